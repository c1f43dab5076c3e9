//! Comparing an object as Helm rendered it with the live object, field by field. Pure, so the
//! rules are tested without a cluster:
//!
//! - only fields the chart sets are compared: defaults the API server filled in, labels and
//!   annotations others added, and list entries others added (an injected sidecar) are not drift;
//! - a field the chart sets to an empty or zero value that the server leaves out is not drift;
//! - quantities compare by value (`1024Mi` is `1Gi`, `1` is `"1"`);
//! - `spec.replicas` when an autoscaler owns it (`metadata.managedFields`: written through the
//!   `scale` subresource by a manager other than kubectl, or by kube-controller-manager) is not
//!   drift, while a count a person set (`kubectl scale`, `kubectl edit`) is; no other field is
//!   ever exempt, whatever `managedFields` claims.
use serde_json::{Map, Value};

/// One step into an object: a map key, a list entry found by its identifying fields, or a
/// position in a list without such fields.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Entry(Map<String, Value>),
    Index(usize),
}

/// Fields that identify an entry of a list (the merge keys Kubernetes uses), in the order
/// tried: the first that every rendered entry carries, with no two alike, matches rendered and
/// live entries (volume mounts by path, ports by number, containers and env by name).
const ENTRY_KEYS: &[&str] = &["mountPath", "devicePath", "containerPort", "port", "name", "ip"];
/// Scalar fields kept to name an entry, so it can be found in `managedFields` (`k:{...}`).
const ENTRY_IDENTITY: &[&str] = &[
    "name",
    "containerPort",
    "port",
    "protocol",
    "mountPath",
    "devicePath",
    "ip",
];

/// The paths, as people read them (`spec.template.spec.containers[name="wordpress"].image`), of
/// every field `rendered` sets that `live` holds differently, leaving out fields an autoscaler
/// owns. `status` and server bookkeeping in `metadata` are never compared.
pub fn drifted_fields(rendered: &Value, live: &Value) -> Vec<String> {
    let managed = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut found = Vec::new();
    let Some(rendered) = rendered.as_object() else {
        return Vec::new();
    };
    for (key, value) in rendered {
        if matches!(key.as_str(), "apiVersion" | "kind" | "status") {
            continue;
        }
        let mut path = vec![Step::Key(key.clone())];
        if key == "metadata" {
            // Only what a chart sets about an object itself: its labels and annotations.
            for part in ["labels", "annotations"] {
                if let Some(v) = value.get(part) {
                    path.push(Step::Key(part.into()));
                    walk(
                        v,
                        live.pointer(&format!("/metadata/{part}")),
                        &mut path,
                        &mut found,
                    );
                    path.pop();
                }
            }
            continue;
        }
        walk(value, live.get(key), &mut path, &mut found);
    }
    found
        .into_iter()
        .filter(|path| !owned_by_autoscaler(managed, path))
        .map(|path| show(&path))
        .collect()
}

fn walk(rendered: &Value, live: Option<&Value>, path: &mut Vec<Step>, found: &mut Vec<Vec<Step>>) {
    match (rendered, live) {
        // The chart sets nothing here (`key:` with no value).
        (Value::Null, _) => {}
        // The server leaves out empty and zero values (`omitempty`).
        (r, None) => {
            if !is_empty(r) {
                found.push(path.clone());
            }
        }
        (Value::Object(r), Some(Value::Object(l))) => {
            for (key, value) in r {
                path.push(Step::Key(key.clone()));
                walk(value, l.get(key), path, found);
                path.pop();
            }
        }
        (Value::Array(r), Some(Value::Array(l))) => walk_list(r, l, path, found),
        (r, Some(l)) => {
            let quantity = path
                .iter()
                .any(|s| matches!(s, Step::Key(k) if k == "resources" || k == "sizeLimit"));
            if !(same_scalar(r, l) || quantity && same_quantity(r, l)) {
                found.push(path.clone());
            }
        }
    }
}

fn walk_list(rendered: &[Value], live: &[Value], path: &mut Vec<Step>, found: &mut Vec<Vec<Step>>) {
    // An empty list in the chart claims no entries: entries others added stay, as they do when
    // Helm applies it.
    if rendered.is_empty() {
        return;
    }
    let key = ENTRY_KEYS.iter().copied().find(|k| {
        let values: Vec<&Value> = rendered.iter().filter_map(|e| e.get(*k)).collect();
        values.len() == rendered.len()
            && values.iter().all(|v| !v.is_object() && !v.is_array())
            && values.iter().enumerate().all(|(i, v)| !values[..i].contains(v))
    });
    let Some(key) = key else {
        // A list without identifying fields is one value: same length, same entries in order.
        if rendered.len() != live.len() {
            found.push(path.clone());
            return;
        }
        for (i, (r, l)) in rendered.iter().zip(live).enumerate() {
            path.push(Step::Index(i));
            walk(r, Some(l), path, found);
            path.pop();
        }
        return;
    };
    for r in rendered {
        let matching = live.iter().find(|l| {
            l.get(key)
                .is_some_and(|v| r.get(key).is_some_and(|rv| same_scalar(rv, v)))
        });
        let named = identity(matching.unwrap_or(r));
        path.push(Step::Entry(named));
        match matching {
            Some(l) => walk(r, Some(l), path, found),
            None => found.push(path.clone()),
        }
        path.pop();
    }
}

fn identity(entry: &Value) -> Map<String, Value> {
    ENTRY_IDENTITY
        .iter()
        .filter_map(|k| {
            entry
                .get(*k)
                .filter(|v| !v.is_object() && !v.is_array())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect()
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_empty),
    }
}

/// The same value, or the same number (`1` and `1.0`). A rendered text against a live number
/// or boolean is read as Helm reads YAML (1.1: `0440` is octal, `yes` is true): the API server
/// takes no text for such a field, so Helm must have sent a number or boolean.
fn same_scalar(rendered: &Value, live: &Value) -> bool {
    if rendered == live || matches!((rendered.as_f64(), live.as_f64()), (Some(a), Some(b)) if a == b) {
        return true;
    }
    match (rendered, live) {
        (Value::String(s), Value::Number(n)) => yaml11_int(s).is_some_and(|i| Some(i as f64) == n.as_f64()),
        (Value::String(s), Value::Bool(b)) => yaml11_bool(s) == Some(*b),
        _ => false,
    }
}

/// An integer as YAML 1.1 reads a plain scalar: `0o`-less octal with a leading 0, `0x`, `0b`.
fn yaml11_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -value } else { value })
}

fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// The same quantity (`1024Mi` and `1Gi`, `1` and `"1"`): the API server rewrites quantities.
fn same_quantity(rendered: &Value, live: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match (text(rendered), text(live)) {
        (Some(a), Some(b)) => matches!(
            (quantity_nanos(&a), quantity_nanos(&b)),
            (Some(x), Some(y)) if x == y
        ),
        _ => false,
    }
}

/// Whether the field at `path` is owned by an autoscaler rather than by the chart or a person.
/// Only `spec.replicas` can be: `managedFields` is written by whoever writes the object (a store
/// team can claim any field under any manager name), so an exemption wider than the one field
/// an autoscaler sets would let anyone shield a field from repair.
fn owned_by_autoscaler(managed: &[Value], path: &[Step]) -> bool {
    if !matches!(path, [Step::Key(spec), Step::Key(replicas)] if spec == "spec" && replicas == "replicas") {
        return false;
    }
    let owners: Vec<&Value> = managed
        .iter()
        .filter(|entry| entry.get("fieldsV1").is_some_and(|f| owns(f, path)))
        .collect();
    !owners.is_empty() && owners.iter().all(|entry| is_autoscaler(entry))
}

fn is_autoscaler(entry: &Value) -> bool {
    let manager = entry.get("manager").and_then(Value::as_str).unwrap_or_default();
    let through_scale = entry.get("subresource").and_then(Value::as_str) == Some("scale");
    manager == "kube-controller-manager" || (through_scale && !manager.starts_with("kubectl"))
}

/// Whether a `fieldsV1` set holds the field at `path` (or an atomic value around it).
fn owns(fields: &Value, path: &[Step]) -> bool {
    let mut node = fields;
    for (depth, step) in path.iter().enumerate() {
        let Some(children) = node.as_object() else {
            return false;
        };
        // `{}` below the root: the manager owns this whole value (an atomic list or map).
        if depth > 0 && children.keys().all(|k| k == ".") {
            return true;
        }
        let next = match step {
            Step::Key(k) => children.get(&format!("f:{k}")),
            Step::Entry(named) => children.iter().find_map(|(k, v)| {
                let key: Map<String, Value> = serde_json::from_str(k.strip_prefix("k:")?).ok()?;
                key.iter()
                    .all(|(f, want)| named.get(f).is_some_and(|have| same_scalar(want, have)))
                    .then_some(v)
            }),
            Step::Index(_) => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    true
}

/// `spec.template.spec.containers[name="wordpress"].image`, `data["php.ini"]`.
fn show(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Key(k) => out.push_str(&format!("[{}]", Value::String(k.clone()))),
            Step::Entry(named) => {
                let shown: Vec<String> = named.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("[{}]", shown.join(",")));
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Value of a Kubernetes quantity in billionths of a unit (`500m` = 500_000_000).
pub fn quantity_nanos(s: &str) -> Option<i128> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') || fraction.len() > 9 {
        return None;
    }
    let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = 10i128.pow(fraction.len() as u32);
    let pow = |base: i128, exp: u32| base.checked_pow(exp);
    // The suffix as a fraction: numerator, denominator.
    let (num, den): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (pow(10, 6)?, 1),
        "G" => (pow(10, 9)?, 1),
        "T" => (pow(10, 12)?, 1),
        "P" => (pow(10, 15)?, 1),
        "E" => (pow(10, 18)?, 1),
        "Ki" => (pow(2, 10)?, 1),
        "Mi" => (pow(2, 20)?, 1),
        "Gi" => (pow(2, 30)?, 1),
        "Ti" => (pow(2, 40)?, 1),
        "Pi" => (pow(2, 50)?, 1),
        "Ei" => (pow(2, 60)?, 1),
        e => {
            let exp: i32 = e.strip_prefix(['e', 'E'])?.parse().ok()?;
            if !(-9..=18).contains(&exp) {
                return None;
            }
            if exp >= 0 {
                (pow(10, exp as u32)?, 1)
            } else {
                (1, pow(10, (-exp) as u32)?)
            }
        }
    };
    digits
        .checked_mul(num)?
        .checked_mul(1_000_000_000)?
        .checked_div(scale)?
        .checked_div(den)
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
