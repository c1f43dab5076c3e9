//! The rules a well-formed catalog must also follow: one file at a time, then across files.
use std::collections::{BTreeMap, HashMap};

use super::diagnostics::{Capped, Diagnostic, MAX_FINDINGS_PER_FILE, Omitted};
use super::model::{PLATFORM_FILE, Parsed, PlatformConfig, RawCatalog, Store};
use super::position::Positions;
use super::rules;
pub(crate) use super::values::Allowlists;
use super::values::{Verdict, for_each_leaf};

/// Top-level chart values storesync sets itself; a store can never override them (`retired`:
/// the engine charts stop a store's pods and Ingress with it, which only storesync decides).
pub const PLATFORM_VALUE_ROOTS: &[&str] = &["store", "ingress", "credentials", "retired"];

/// Rules of `storesync.yaml` beyond its shape.
pub(super) fn platform(p: &PlatformConfig, pos: &Positions) -> Vec<Diagnostic> {
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
    if let Err(why) = super::model::parse_retention(&p.prune.retention_text) {
        err(
            pos.value(&["prune", "retention"]),
            format!("`{}` is not a retention: {why}", p.prune.retention_text),
            "give a duration such as 168h, 7d or 30m; 0s deletes a store as soon as its file is gone",
        );
    }
    if let Some(r) = &p.rollout {
        rollout(r, pos, &mut err);
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

/// Rules of `rollout` beyond its shape (canaries are checked against the catalog later).
fn rollout(
    r: &super::model::RolloutConfig,
    pos: &Positions,
    err: &mut impl FnMut((usize, usize), String, &str),
) {
    use super::model::{Scalar, parse_wait, percent};
    let mut seen = std::collections::BTreeSet::new();
    for (i, name) in r.canaries.iter().enumerate() {
        let at = pos.value(&["rollout", "canaries", &i.to_string()]);
        if !rules::is_store_name(name) {
            err(
                at,
                format!("`{name}` is not a store name"),
                "list the names of stores, such as acme",
            );
        } else if !seen.insert(name.as_str()) {
            err(
                at,
                format!("canary `{name}` is listed twice"),
                "list each canary once",
            );
        }
    }
    if r.waves.is_empty() {
        err(
            pos.value(&["rollout", "waves"]),
            "rollout.waves is empty".into(),
            "give cumulative shares ending at 100%, such as [25%, 100%]",
        );
    }
    let mut last = 0;
    for (i, w) in r.waves.iter().enumerate() {
        let at = pos.value(&["rollout", "waves", &i.to_string()]);
        match percent(w) {
            None | Some(0) => err(
                at,
                format!("`{w}` is not a share of stores"),
                "write a percentage from 1% to 100%, such as 25%",
            ),
            Some(p) if p <= last => err(
                at,
                format!("`{w}` does not grow: waves are cumulative shares, each larger than the one before"),
                "write increasing shares ending at 100%, such as [10%, 50%, 100%]",
            ),
            Some(p) => last = p,
        }
    }
    if !r.waves.is_empty() && last != 100 && r.waves.iter().all(|w| percent(w).is_some()) {
        err(
            pos.value(&["rollout", "waves", &(r.waves.len() - 1).to_string()]),
            "the last wave is not 100%: some updated stores would never be updated".into(),
            "end the waves with 100%",
        );
    }
    let allowance_ok = match &r.max_unhealthy {
        Scalar::Number(n) => *n >= 0,
        share => percent(share).is_some(),
    };
    if !allowance_ok {
        err(
            pos.value(&["rollout", "maxUnhealthy"]),
            format!("`{}` is not a number of stores or a share", r.max_unhealthy),
            "write a count such as 0 or 1, or a share such as 10%",
        );
    }
    for (field, text, least) in [("healthTimeout", &r.health_timeout, 1), ("soak", &r.soak, 0)] {
        let at = pos.value(&["rollout", field]);
        match parse_wait(text) {
            Err(why) => err(
                at,
                format!("`{text}` is not a duration: {why}"),
                "give a duration such as 10m, 90s or 1h",
            ),
            Ok(d) if d.as_secs() < least => err(
                at,
                format!("rollout.{field} must be longer than 0s"),
                "give the time a store has to become Healthy, such as 10m",
            ),
            Ok(_) => {}
        }
    }
}

/// Rules of one store file against the platform: the first findings by position, and the
/// count of the rest.
pub(crate) fn store(
    p: &Parsed,
    platform: &PlatformConfig,
    allowlists: &Allowlists,
) -> (Vec<Diagnostic>, Option<Omitted>) {
    let s = &p.store;
    let mut out = Vec::new();
    // Values outside the allowlist can be thousands: they are built only when shown.
    let mut values: Vec<((usize, usize), String, Verdict)> = Vec::new();
    // Positions are found only when a finding needs one.
    let mut err = |path: &[&str], at_key: bool, message: String, hint: String| {
        let pos = p.positions();
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
            for_each_leaf(&s.values, |segments, path, empty_map| {
                let verdict = allowlist.verdict(path);
                if verdict == Verdict::Allowed || (verdict == Verdict::Parent && empty_map) {
                    return;
                }
                let at: Vec<&str> = std::iter::once("values")
                    .chain(segments.iter().copied())
                    .collect();
                let pos = p.positions();
                let at = if verdict == Verdict::Parent {
                    pos.value(&at)
                } else {
                    pos.key(&at)
                };
                values.push((at, path.to_string(), verdict));
            });
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

    let allowlist = allowlists.get(&s.engine);
    let value = |at: (usize, usize), path: String, verdict: Verdict| {
        let (message, hint) = if verdict == Verdict::Parent {
            (
                format!(
                    "value `{path}` must be a map: engine `{}` allows only values below it",
                    s.engine
                ),
                format!(
                    "set the allowed values under `{path}:` (allowed values: {}), or remove it",
                    allowlist.shown
                ),
            )
        } else {
            (
                format!("value `{path}` is not allowed for engine `{}`", s.engine),
                format!(
                    "allowed values: {}; ask the platform team to extend engines.{}.valuesAllowlist",
                    allowlist.shown, s.engine
                ),
            )
        };
        Diagnostic::error(&p.path, at, message).hint(hint)
    };
    let mut all: Vec<((usize, usize), Finding)> = out
        .into_iter()
        .map(|d| ((d.line, d.column), Finding::Ready(d)))
        .chain(
            values
                .into_iter()
                .map(|(at, path, verdict)| (at, Finding::Value(path, verdict))),
        )
        .collect();
    all.sort_by_key(|(at, _)| *at);
    let mut capped = Capped::new(MAX_FINDINGS_PER_FILE);
    for (at, finding) in all {
        capped.push(at, true, || match finding {
            Finding::Ready(d) => d,
            Finding::Value(path, verdict) => value(at, path, verdict),
        });
    }
    (capped.kept, capped.omitted)
}

/// A finding of [`store`]: built, or a value path to build one for when it is shown.
enum Finding {
    Ready(Diagnostic),
    Value(String, Verdict),
}

fn keys<V>(m: &BTreeMap<String, V>) -> String {
    m.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
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
    // A canary that is not a store would leave the rollout without the canary it was meant to
    // have: a typo must not pass silently.
    for (i, canary) in platform
        .rollout
        .iter()
        .flat_map(|r| r.canaries.iter())
        .enumerate()
    {
        if rules::is_store_name(canary) && !names.contains_key(canary.as_str()) {
            let (file, at) = limit_position(raw, &["rollout", "canaries", &i.to_string()]);
            out.push(
                Diagnostic::error(
                    &file,
                    at,
                    format!("canary `{canary}` is not a store of the catalog"),
                )
                .hint("list stores that have a file under the stores directory, or remove it"),
            );
        }
    }
    out
}

/// Where to point a finding about a platform limit: its key in storesync.yaml, or the stores
/// directory when the limit is a built-in default.
fn limit_position(raw: &RawCatalog, path: &[&str]) -> (String, (usize, usize)) {
    let at = match &raw.platform {
        Some(super::model::RawContent::File(bytes)) => std::str::from_utf8(bytes)
            .map(|text| super::value_position(text, path))
            .unwrap_or((0, 0)),
        _ => (0, 0),
    };
    match at {
        (0, 0) => (raw.stores_dir.clone(), at),
        _ => (PLATFORM_FILE.to_string(), at),
    }
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
