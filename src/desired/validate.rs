//! The rules a well-formed catalog must also follow: one file at a time, then across files.
use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::diagnostics::Diagnostic;
use super::load::{PLATFORM_FILE, Parsed, RawCatalog, Store};
use super::model::PlatformConfig;
use super::position::Positions;
use super::rules;

/// Top-level chart values storesync sets itself; a store can never override them.
pub const PLATFORM_VALUE_ROOTS: &[&str] = &["store", "ingress", "credentials"];

/// Rules of `storesync.yaml` beyond its shape.
pub fn platform(p: &PlatformConfig, pos: &Positions) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut err = |at: (usize, usize), message: String, hint: &str| {
        out.push(Diagnostic::error(PLATFORM_FILE, at, message).hint(hint));
    };
    if !rules::is_domain(&p.base_domain) {
        err(
            pos.value(&["baseDomain"]),
            format!("`{}` is not a valid domain", p.base_domain),
            "use a DNS name such as shop.example.com",
        );
    }
    if !rules::is_domain(&p.ingress_class) && !rules::is_dns_label(&p.ingress_class) {
        err(
            pos.value(&["ingressClass"]),
            format!("`{}` is not a valid ingress class name", p.ingress_class),
            "use the name of an IngressClass, such as nginx",
        );
    }
    if !rules::is_dns_label(&p.ingress_namespace) {
        err(
            pos.value(&["ingressNamespace"]),
            format!("`{}` is not a valid namespace name", p.ingress_namespace),
            "use the namespace of the ingress controller, such as ingress-nginx",
        );
    }
    let dir = &p.stores_dir;
    if !rules::is_catalog_dir(dir) {
        err(
            pos.value(&["storesDir"]),
            format!("`{dir}` is not a relative directory inside the catalog"),
            "use a path such as stores, without `..` or a leading `/`",
        );
    }
    if p.plans.is_empty() {
        err(
            pos.value(&["plans"]),
            "no plans are defined".into(),
            "define at least one plan, or remove `plans` to use the built-in small, medium and large",
        );
    }
    for (name, plan) in &p.plans {
        if !rules::is_dns_label(name) {
            err(
                pos.key(&["plans", name]),
                format!("plan name `{name}` is not valid"),
                "use lowercase letters, digits and '-'",
            );
        }
        if plan.quota.is_empty() {
            err(
                pos.value(&["plans", name, "quota"]),
                format!("plan `{name}` has an empty quota"),
                "give at least requests.cpu and requests.memory",
            );
        }
        for (resource, q) in &plan.quota {
            if !rules::is_quantity(q) {
                err(
                    pos.value(&["plans", name, "quota", resource]),
                    format!("`{q}` is not a valid quantity for {resource}"),
                    "use a Kubernetes quantity such as 500m, 2, 512Mi or 10Gi",
                );
            }
        }
        let c = &plan.limit_range.container;
        let groups = [
            ("default", &c.default),
            ("defaultRequest", &c.default_request),
            ("max", &c.max),
        ];
        for (group, values) in groups {
            for (resource, q) in values {
                if !rules::is_quantity(q) {
                    err(
                        pos.value(&["plans", name, "limitRange", "container", group, resource]),
                        format!("`{q}` is not a valid quantity for {resource}"),
                        "use a Kubernetes quantity such as 500m, 2, 512Mi or 10Gi",
                    );
                }
            }
        }
        for (resource, q) in plan
            .limit_range
            .persistent_volume_claim
            .iter()
            .flat_map(|p| &p.max)
        {
            if !rules::is_quantity(q) {
                err(
                    pos.value(&[
                        "plans",
                        name,
                        "limitRange",
                        "persistentVolumeClaim",
                        "max",
                        resource,
                    ]),
                    format!("`{q}` is not a valid quantity for {resource}"),
                    "use a Kubernetes quantity such as 10Gi",
                );
            }
        }
    }
    if p.engines.is_empty() {
        err(
            pos.value(&["engines"]),
            "no engines are defined".into(),
            "define at least one engine, or remove `engines` to use the built-in woocommerce and medusa",
        );
    }
    for (name, engine) in &p.engines {
        if !rules::is_dns_label(name) {
            err(
                pos.key(&["engines", name]),
                format!("engine name `{name}` is not valid"),
                "use lowercase letters, digits and '-'",
            );
        }
        if !rules::is_chart_dir_name(&engine.chart) && !rules::is_oci_reference(&engine.chart) {
            err(
                pos.value(&["engines", name, "chart"]),
                format!("`{}` is not a chart of engine `{name}`", engine.chart),
                "name a chart directory under the charts directory (one name, such as woocommerce) or an \
                 oci://host/path reference",
            );
        }
        if engine.version.trim().is_empty() || engine.version.contains(char::is_whitespace) {
            err(
                pos.value(&["engines", name, "version"]),
                format!("engine `{name}` has no valid chart version"),
                "pin the chart version, such as 0.1.0",
            );
        }
        for (i, entry) in engine.values_allowlist.iter().enumerate() {
            let index = i.to_string();
            let path = ["engines", name, "valuesAllowlist", index.as_str()];
            if !rules::is_value_path(entry) {
                err(
                    pos.value(&path),
                    format!("`{entry}` is not a dotted value path"),
                    "write paths such as admin.email",
                );
            } else if PLATFORM_VALUE_ROOTS.contains(&entry.split('.').next().unwrap_or_default()) {
                err(
                    pos.value(&path),
                    format!("`{entry}` is set by storesync and cannot be allowlisted"),
                    "remove it; store, ingress and credentials values come from the platform",
                );
            }
        }
    }
    if p.limits.max_stores == 0 {
        err(
            pos.value(&["limits", "maxStores"]),
            "limits.maxStores must be at least 1".into(),
            "set the largest number of stores the platform runs",
        );
    }
    if p.limits.max_stores_per_owner == 0 {
        err(
            pos.value(&["limits", "maxStoresPerOwner"]),
            "limits.maxStoresPerOwner must be at least 1".into(),
            "set the largest number of stores one team may own",
        );
    }
    out
}

/// Rules of one store file against the platform.
pub(crate) fn store(p: &Parsed, platform: &PlatformConfig, allowlists: &Allowlists) -> Vec<Diagnostic> {
    let s = &p.store;
    let mut out = Vec::new();
    // Positions are computed only when a finding needs one.
    let mut positions: Option<Positions> = None;
    let mut err = |path: &[&str], at_key: bool, message: String, hint: String| {
        let pos = positions.get_or_insert_with(|| p.positions());
        let at = if at_key { pos.key(path) } else { pos.value(path) };
        out.push(Diagnostic::error(&p.path, at, message).hint(hint));
    };
    if !rules::is_store_name(&s.name) {
        err(&["name"], false, format!("store name `{}` is not valid", s.name),
            "use 3 to 40 characters of a-z, 0-9 and '-', starting with a letter and ending with a letter or digit".into());
    } else if s.name != p.stem {
        err(
            &["name"],
            false,
            format!(
                "store name `{}` does not match the file name `{}`",
                s.name,
                p.path.rsplit('/').next().unwrap_or_default()
            ),
            format!("rename the file to {}.yaml, or set `name: {}`", s.name, p.stem),
        );
    }
    match platform.engines.get(&s.engine) {
        None => err(
            &["engine"],
            false,
            format!("unknown engine `{}`", s.engine),
            format!(
                "use one of: {} (engines are defined in storesync.yaml)",
                keys(&platform.engines)
            ),
        ),
        Some(_) => {
            let allowlist = allowlists.get(&s.engine);
            for leaf in value_paths(&s.values) {
                let segments: Vec<&str> = std::iter::once("values")
                    .chain(leaf.segments.iter().map(String::as_str))
                    .collect();
                match allowlist.verdict(&leaf.path) {
                    Verdict::Allowed => {}
                    Verdict::Parent if leaf.empty_map => {}
                    Verdict::Parent => err(
                        &segments,
                        false,
                        format!(
                            "value `{}` must be a map: engine `{}` allows only values below it",
                            leaf.path, s.engine
                        ),
                        format!(
                            "set the allowed values under `{}:` (allowed values: {}), or remove it",
                            leaf.path, allowlist.shown
                        ),
                    ),
                    Verdict::Denied => err(
                        &segments,
                        true,
                        format!("value `{}` is not allowed for engine `{}`", leaf.path, s.engine),
                        format!(
                            "allowed values: {}; ask the platform team to extend engines.{}.valuesAllowlist",
                            allowlist.shown, s.engine
                        ),
                    ),
                }
            }
        }
    }
    if !platform.plans.contains_key(&s.plan) {
        err(
            &["plan"],
            false,
            format!("unknown plan `{}`", s.plan),
            format!(
                "use one of: {} (plans are defined in storesync.yaml)",
                keys(&platform.plans)
            ),
        );
    }
    if !rules::is_label_value(&s.owner) {
        err(&["owner"], false, format!("owner `{}` is not valid", s.owner),
            "name the team with up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into());
    }
    if let Some(domain) = &s.domain
        && !rules::is_domain(domain)
    {
        err(&["domain"], false, format!("domain `{domain}` is not a valid host name"),
            "use a lowercase DNS name such as acme.shop.example.com (no wildcard, no trailing dot), or leave it out for the default".into());
    }
    out
}

fn keys<V>(m: &BTreeMap<String, V>) -> String {
    m.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// A leaf of a values tree: a value that is not a map, or an empty map.
struct Leaf {
    /// Dotted: `admin.email`.
    path: String,
    segments: Vec<String>,
    empty_map: bool,
}

/// The leaves of a values tree, in order.
fn value_paths(values: &Map<String, Value>) -> Vec<Leaf> {
    fn walk(map: &Map<String, Value>, prefix: &mut Vec<String>, out: &mut Vec<Leaf>) {
        for (k, v) in map {
            prefix.push(k.clone());
            match v {
                Value::Object(inner) if !inner.is_empty() => walk(inner, prefix, out),
                _ => out.push(Leaf {
                    path: prefix.join("."),
                    segments: prefix.clone(),
                    empty_map: matches!(v, Value::Object(_)),
                }),
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(values, &mut Vec::new(), &mut out);
    out
}

/// What an engine's allowlist says of a value path.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The path is an entry or lies under one.
    Allowed,
    /// The path is a parent of an entry: it may only hold a map.
    Parent,
    Denied,
}

/// One engine's allowlist as sets, so that a lookup costs the depth of a path, not the length
/// of the list.
#[derive(Default)]
pub(crate) struct Allowlist {
    entries: HashSet<String>,
    parents: HashSet<String>,
    /// The list for a hint, shortened.
    shown: String,
}

impl Allowlist {
    fn new(list: &[String]) -> Allowlist {
        const SHOWN: usize = 20;
        let mut shown = list.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
        if list.is_empty() {
            shown = "none".into();
        } else if list.len() > SHOWN {
            shown.push_str(&format!(" and {} more", list.len() - SHOWN));
        }
        Allowlist {
            entries: list.iter().cloned().collect(),
            parents: list
                .iter()
                .flat_map(|e| e.match_indices('.').map(|(i, _)| e[..i].to_string()))
                .collect(),
            shown,
        }
    }

    fn verdict(&self, path: &str) -> Verdict {
        let under_entry = path
            .match_indices('.')
            .map(|(i, _)| &path[..i])
            .chain([path])
            .any(|prefix| self.entries.contains(prefix));
        if under_entry {
            Verdict::Allowed
        } else if self.parents.contains(path) {
            Verdict::Parent
        } else {
            Verdict::Denied
        }
    }
}

/// Every engine's [`Allowlist`], built once per catalog.
pub(crate) struct Allowlists {
    engines: HashMap<String, Allowlist>,
    none: Allowlist,
}

impl Allowlists {
    pub fn of(platform: &PlatformConfig) -> Allowlists {
        Allowlists {
            engines: platform
                .engines
                .iter()
                .map(|(name, e)| (name.clone(), Allowlist::new(&e.values_allowlist)))
                .collect(),
            none: Allowlist::new(&[]),
        }
    }

    fn get(&self, engine: &str) -> &Allowlist {
        self.engines.get(engine).unwrap_or(&self.none)
    }
}

fn effective_domain(s: &super::model::StoreFile, platform: &PlatformConfig) -> String {
    s.domain
        .clone()
        .unwrap_or_else(|| format!("{}.{}", s.name, platform.base_domain))
}

/// Rules across files: unique names and domains, catalog size limits.
pub(crate) fn across_stores(
    parsed: &[Parsed],
    platform: &PlatformConfig,
    store_files: usize,
    raw: &RawCatalog,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Parsed> = parsed.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));

    let mut names: HashMap<&str, &Parsed> = HashMap::new();
    let mut domains: HashMap<String, &Parsed> = HashMap::new();
    for p in &sorted {
        if let Some(first) = names.get(p.store.name.as_str()) {
            out.push(
                Diagnostic::error(
                    &p.path,
                    p.positions().value(&["name"]),
                    format!("store `{}` is already defined in {}", p.store.name, first.path),
                )
                .hint("each store has exactly one file; remove one of them"),
            );
        } else {
            names.insert(&p.store.name, p);
        }
        let domain = effective_domain(&p.store, platform);
        if let Some(first) = domains.get(&domain) {
            let at = if p.store.domain.is_some() {
                &["domain"]
            } else {
                &["name"]
            };
            out.push(
                Diagnostic::error(
                    &p.path,
                    p.positions().value(at),
                    format!(
                        "domain `{domain}` is already used by store `{}` ({})",
                        first.store.name, first.path
                    ),
                )
                .hint("give each store its own domain"),
            );
        } else {
            domains.insert(domain, p);
        }
    }

    let limits = &platform.limits;
    if store_files > limits.max_stores {
        let (file, at) = limit_position(raw, &["limits", "maxStores"]);
        out.push(
            Diagnostic::error(
                file,
                at,
                format!(
                    "the catalog has {store_files} stores; limits.maxStores is {}",
                    limits.max_stores
                ),
            )
            .hint("remove stores, or raise limits.maxStores in storesync.yaml"),
        );
    }
    let mut per_owner: BTreeMap<&str, Vec<&Parsed>> = BTreeMap::new();
    for p in &sorted {
        per_owner.entry(p.store.owner.as_str()).or_default().push(p);
    }
    for (owner, stores) in per_owner {
        if let Some(first_excess) = stores.get(limits.max_stores_per_owner) {
            out.push(
                Diagnostic::error(
                    &first_excess.path,
                    first_excess.positions().value(&["owner"]),
                    format!(
                        "owner `{owner}` has {} stores; limits.maxStoresPerOwner is {}",
                        stores.len(),
                        limits.max_stores_per_owner
                    ),
                )
                .hint("remove stores of this owner, or raise limits.maxStoresPerOwner in storesync.yaml"),
            );
        }
    }
    out
}

/// Where to point a finding about a platform limit: its key in storesync.yaml, or the stores
/// directory when the limit is a built-in default.
fn limit_position(raw: &RawCatalog, path: &[&str]) -> (String, (usize, usize)) {
    if let Some(super::load::RawContent::File(bytes)) = &raw.platform
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        let pos = Positions::of(text);
        if pos.has(path) {
            return (PLATFORM_FILE.to_string(), pos.value(path));
        }
    }
    (raw.stores_dir.clone(), (0, 0))
}

/// A parsed store that passed every rule, with its defaults filled in.
pub(crate) fn finish(p: Parsed, platform: &PlatformConfig) -> Store {
    let domain = effective_domain(&p.store, platform);
    let s = p.store;
    Store {
        file: p.path,
        name: s.name,
        engine: s.engine,
        plan: s.plan,
        owner: s.owner,
        domain,
        protected: s.protected,
        suspend: s.suspend,
        values: s.values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_paths() {
        let list = Allowlist::new(&["admin.email".to_string(), "sampleProduct".to_string()]);
        assert_eq!(list.verdict("admin.email"), Verdict::Allowed);
        assert_eq!(list.verdict("sampleProduct.price"), Verdict::Allowed);
        assert_eq!(list.verdict("sampleProduct"), Verdict::Allowed);
        assert_eq!(list.verdict("admin"), Verdict::Parent, "may only hold a map");
        assert_eq!(list.verdict("admin.password"), Verdict::Denied);
        assert_eq!(list.verdict("adminx"), Verdict::Denied);
        assert_eq!(list.verdict("sampleProductx"), Verdict::Denied);
        assert_eq!(list.verdict("admin.emailx"), Verdict::Denied);
    }

    #[test]
    fn value_paths_are_leaves() {
        let v: Map<String, Value> = serde_json::from_str(r#"{"a":{"b":1,"c":{}},"d":[1,2]}"#).unwrap();
        let paths: Vec<(String, bool)> = value_paths(&v)
            .into_iter()
            .map(|l| (l.path, l.empty_map))
            .collect();
        assert_eq!(
            paths,
            vec![("a.b".into(), false), ("a.c".into(), true), ("d".into(), false)]
        );
    }
}
