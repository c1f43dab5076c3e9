//! The stores of a catalog directory (stores.example) as storesync installs them: each store's
//! plan from the platform file, and its chart values merged the way storesync merges them
//! (engine values, then store values, then the values storesync always sets).

use super::budget::{Plan, default_plans, plan_from_platform};
use super::helm::{set_path, yaml};
use super::manifest::{get, str_at};
use serde_yaml_ng::{Mapping, Value};
use std::path::Path;

pub struct CatalogStore {
    pub name: String,
    /// Chart directory under the repository, e.g. charts/medusa.
    pub chart: String,
    pub plan: Plan,
    pub values: Value,
}

/// Every store file of the catalog at `dir`, with its plan and values; panics naming the file
/// when the catalog cannot be read (the catalog's own validity is tests/it/validate/'s job).
pub fn catalog_stores(dir: &Path) -> Vec<CatalogStore> {
    let platform_file = dir.join("storesync.yaml");
    let platform: Value = std::fs::read_to_string(&platform_file)
        .map(|text| yaml(&text))
        .unwrap_or_else(|_| Value::Mapping(Mapping::new()));
    let plans: Vec<Plan> = match get(&platform, "plans").and_then(Value::as_mapping) {
        Some(map) => map
            .iter()
            .map(|(name, node)| {
                let name = name.as_str().unwrap_or_default();
                plan_from_platform(name, node).unwrap_or_else(|e| panic!("{}: {e}", platform_file.display()))
            })
            .collect(),
        None => default_plans(),
    };
    let stores_dir = dir.join(match str_at(&platform, "storesDir") {
        "" => "stores",
        other => other,
    });
    let mut files: Vec<_> = std::fs::read_dir(&stores_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", stores_dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let store: Value = yaml(&std::fs::read_to_string(file).expect("store file"));
            let at = |path: &str| str_at(&store, path).to_string();
            let (name, engine, plan_name) = (at("name"), at("engine"), at("plan"));
            let plan = plans
                .iter()
                .find(|p| p.name == plan_name)
                .unwrap_or_else(|| panic!("{}: plan {plan_name:?} is not in the platform", file.display()))
                .clone();
            let engine_node = get(&platform, &format!("engines.{engine}"));
            let chart = engine_node.map_or(engine.as_str(), |e| str_at(e, "chart"));
            assert!(
                !chart.contains('/') && !chart.contains(':'),
                "{}: chart {chart:?} is not a chart of this repository's charts/",
                file.display()
            );
            let mut values = Value::Mapping(Mapping::new());
            if let Some(engine_values) = engine_node.and_then(|e| e.get("values")) {
                merge(&mut values, engine_values.clone());
            }
            if let Some(store_values) = store.get("values") {
                merge(&mut values, store_values.clone());
            }
            merge(&mut values, platform_values(&platform, &store));
            CatalogStore {
                name,
                chart: format!("charts/{chart}"),
                plan,
                values,
            }
        })
        .collect()
}

/// What storesync always sets (src/desired/render.rs `platform_values`).
fn platform_values(platform: &Value, store: &Value) -> Value {
    let name = str_at(store, "name");
    let domain = match str_at(store, "domain") {
        "" => {
            let base = match str_at(platform, "baseDomain") {
                "" => "shop.example.com",
                base => base,
            };
            format!("{name}.{base}")
        }
        domain => domain.to_string(),
    };
    let tls = get(platform, "tls.enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let class = match str_at(platform, "ingressClass") {
        "" => "nginx",
        class => class,
    };
    let mut values = Value::Mapping(Mapping::new());
    let secret_name = if tls { format!("{name}-tls") } else { String::new() };
    for (path, value) in [
        ("store.name", name.into()),
        ("store.owner", str_at(store, "owner").into()),
        ("store.plan", str_at(store, "plan").into()),
        ("ingress.enabled", true.into()),
        ("ingress.className", class.into()),
        ("ingress.host", domain.into()),
        ("ingress.tls.enabled", tls.into()),
        (
            "ingress.tls.clusterIssuer",
            str_at(platform, "tls.clusterIssuer").into(),
        ),
        ("ingress.tls.secretName", secret_name.into()),
        ("credentials.existingSecret", "store-credentials".into()),
    ] {
        set_path(&mut values, path, value);
    }
    values
}

/// Deep merge as storesync does it: mappings merge key by key, anything else is replaced.
pub fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Mapping(b), Value::Mapping(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}
