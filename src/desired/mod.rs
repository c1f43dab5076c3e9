//! Desired state: the catalog of stores at one revision, validated, and rendered into the
//! objects each store needs. Pure: the bytes come from [`crate::source`].
mod defaults;
mod diagnostics;
pub mod labels;
mod load;
pub mod model;
mod policy;
mod position;
mod render;
pub mod rules;
mod scan;
pub mod tenancy;
mod validate;
mod values;

pub use defaults::{CHART_VERSION, default_engines, default_plans};
pub use diagnostics::{Diagnostic, MAX_FINDINGS_PER_FILE, Severity, sort as sort_diagnostics};
pub use labels::*;
pub use load::{load, stores_dir_of};
pub use model::{
    Catalog, DEFAULT_RETENTION, EngineSpec, Limits, MAX_FILE_BYTES, PLATFORM_FILE, PlanSpec, PlatformConfig,
    RawCatalog, RawContent, RawEntry, Store, StoreFile,
};
pub use policy::{chart_policy, chart_under_prefix, load_with_policy};
pub use render::*;
pub use scan::{MAX_DEPTH, scan_manifest};

/// Line and column of the value at `path` in a YAML file's `text` (`(0, 0)` when it is not
/// there), for findings that need the cluster to be found.
pub fn value_position(text: &str, path: &[&str]) -> (usize, usize) {
    let positions = scan::positions_of(text);
    if positions.has(path) {
        positions.value(path)
    } else {
        (0, 0)
    }
}
pub use validate::PLATFORM_VALUE_ROOTS;
