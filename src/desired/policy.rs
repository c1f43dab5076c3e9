//! Rules the operator sets on top of the catalog's own: which OCI registries engine charts may
//! come from. A catalog that breaks them is invalid as a whole, like any other finding.
use super::diagnostics::Diagnostic;
use super::model::{PLATFORM_FILE, PlatformConfig, RawCatalog, RawContent};
use super::position::Positions;

/// Whether `chart` lies under `prefix`, on a path-segment boundary: `oci://r.example/charts`
/// allows `oci://r.example/charts/woo`, not `oci://r.example/charts-evil/woo`.
pub fn chart_under_prefix(chart: &str, prefix: &str) -> bool {
    match chart.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// The catalog of `raw` when it is valid and within the operator's chart policy: the one verdict
/// `validate`, `plan --offline`, `plan` and `apply` all give for the same catalog and flags.
pub fn load_with_policy(
    raw: &RawCatalog,
    allowed_prefixes: &[String],
) -> Result<super::model::Catalog, Vec<Diagnostic>> {
    let catalog = super::load::load(raw)?;
    let outside = chart_policy(raw, &catalog.platform, allowed_prefixes);
    if outside.is_empty() {
        Ok(catalog)
    } else {
        Err(outside)
    }
}

/// Findings for every engine whose chart is an OCI reference outside `allowed_prefixes`.
pub fn chart_policy(
    raw: &RawCatalog,
    platform: &PlatformConfig,
    allowed_prefixes: &[String],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut positions: Option<Positions> = None;
    for (name, engine) in &platform.engines {
        let chart = &engine.chart;
        if !chart.starts_with("oci://") || allowed_prefixes.iter().any(|p| chart_under_prefix(chart, p)) {
            continue;
        }
        let pos = positions.get_or_insert_with(|| platform_positions(raw));
        let allowed = if allowed_prefixes.is_empty() {
            "none are allowed".to_string()
        } else {
            format!("allowed: {}", allowed_prefixes.join(", "))
        };
        out.push(
            Diagnostic::error(
                PLATFORM_FILE,
                pos.value(&["engines", name, "chart"]),
                format!("engine `{name}`: chart `{chart}` is not under an OCI prefix this storesync allows ({allowed})"),
            )
            .hint("use a chart directory name under the charts directory, or ask the operator to allow the registry with --allowed-chart-prefix"),
        );
    }
    out
}

fn platform_positions(raw: &RawCatalog) -> Positions {
    match &raw.platform {
        Some(RawContent::File(bytes)) => {
            super::scan::positions_of(std::str::from_utf8(bytes).unwrap_or_default())
        }
        _ => super::scan::positions_of(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let p = "oci://registry.example.com/charts";
        assert!(chart_under_prefix("oci://registry.example.com/charts/woo", p));
        assert!(chart_under_prefix(
            "oci://registry.example.com/charts/woo",
            "oci://registry.example.com/charts/"
        ));
        assert!(!chart_under_prefix(
            "oci://registry.example.com/charts-evil/woo",
            p
        ));
        assert!(!chart_under_prefix("oci://evil.example.com/charts/woo", p));
        assert!(!chart_under_prefix(
            "oci://registry.example.com.evil/charts/woo",
            "oci://registry.example.com"
        ));
    }

    #[test]
    fn oci_charts_need_an_allowed_prefix() {
        let text = "engines:\n  woocommerce:\n    chart: oci://evil.example/woo\n    version: 1.0.0\n";
        let raw = RawCatalog {
            platform: Some(RawContent::File(text.as_bytes().to_vec())),
            stores_dir: "stores".into(),
            entries: Some(Vec::new()),
        };
        let platform: PlatformConfig = serde_yaml_ng::from_str(text).unwrap();
        let found = chart_policy(&raw, &platform, &[]);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].line, found[0].column), (3, 12));
        assert!(
            found[0].message.contains("none are allowed"),
            "{}",
            found[0].message
        );
        assert!(chart_policy(&raw, &platform, &["oci://evil.example".into()]).is_empty());
        assert_eq!(
            chart_policy(&raw, &platform, &["oci://good.example".into()]).len(),
            1
        );
        assert!(chart_policy(&RawCatalog::default(), &PlatformConfig::default(), &[]).is_empty());
    }
}
