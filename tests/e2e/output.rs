//! storesync's JSON output, read the way a script would: `apply --output json` is
//! `{"plan", "result", "dryRun"}`; `plan --output json` is the plan alone.
use serde_json::Value;

use super::harness::Output;

/// Summary counts storesync leaves out while they are zero (`plan.summary`: retire, restore,
/// purge, retired; `result.summary`: retired, restored, purged): absent reads as 0. Any other key
/// must be there.
const COUNTED_WHEN_SOME: [&str; 6] = ["retire", "restore", "purge", "retired", "restored", "purged"];

fn count(summary: &Value, key: &str) -> Option<u64> {
    match &summary[key] {
        Value::Null if COUNTED_WHEN_SOME.contains(&key) && summary.is_object() => Some(0),
        n => n.as_u64(),
    }
}

/// One `storesync apply` or `storesync plan` run.
pub struct Sync {
    pub out: Output,
    /// `Null` when stdout held no JSON (an invalid catalog prints diagnostics only).
    pub json: Value,
    /// `plan --output json` prints the plan at the top level.
    plan_only: bool,
}

impl Sync {
    pub fn new(out: Output) -> Sync {
        let json = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        Sync {
            out,
            json,
            plan_only: false,
        }
    }

    pub fn plan_only(out: Output) -> Sync {
        Sync {
            plan_only: true,
            ..Sync::new(out)
        }
    }

    /// Panics with the whole output unless storesync exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.out.code, Some(code), "unexpected exit code\n{}", self.out);
        // Exit 1 is also an invalid catalog, which has no plan to print; every other run has one.
        assert!(
            code == 1 || !self.json.is_null(),
            "exit {code} without JSON on stdout\n{}",
            self.out
        );
        self
    }

    pub fn plan(&self) -> &Value {
        let plan = if self.plan_only {
            &self.json
        } else {
            &self.json["plan"]
        };
        assert!(plan.is_object(), "no plan in the output\n{}", self.out);
        plan
    }

    pub fn result(&self) -> &Value {
        assert!(!self.plan_only, "`storesync plan` has no result");
        let result = &self.json["result"];
        assert!(result.is_object(), "no result in the output\n{}", self.out);
        result
    }

    /// `plan.summary.<key>`: create, update, unchanged, prune, skip, blocked (always there),
    /// retire, restore, purge, retired (0 when left out).
    pub fn plan_summary(&self, key: &str) -> u64 {
        count(&self.plan()["summary"], key)
            .unwrap_or_else(|| panic!("plan.summary.{key} missing\n{}", self.out))
    }

    /// `result.summary.<key>`: applied, pruned, unchanged, skipped, blocked, failed (always
    /// there), retired, restored, purged (0 when left out).
    pub fn result_summary(&self, key: &str) -> u64 {
        count(&self.result()["summary"], key)
            .unwrap_or_else(|| panic!("result.summary.{key} missing\n{}", self.out))
    }

    fn find<'a>(list: &'a Value, store: &str) -> Option<&'a Value> {
        list.as_array()?.iter().find(|s| s["store"] == store)
    }

    /// The plan's entry for `store`, if the plan mentions it at all.
    pub fn plan_store(&self, store: &str) -> Option<&Value> {
        Self::find(&self.plan()["stores"], store)
    }

    pub fn result_store(&self, store: &str) -> Option<&Value> {
        Self::find(&self.result()["stores"], store)
    }

    /// The planned action for `store`: create, update, unchanged, skip, blocked; for a store whose
    /// file is gone retire, retired (waiting for its purge), purge, or prune (`prune.retention:
    /// 0s`); restore for a retired store whose file is back.
    pub fn action(&self, store: &str) -> &str {
        self.plan_store(store)
            .and_then(|s| s["action"].as_str())
            .unwrap_or_else(|| panic!("the plan has no action for {store}\n{}", self.out))
    }

    /// What happened to `store`: applied, unchanged, skipped (a retired store waiting for its
    /// purge, too), blocked, failed, retired, restored, purged or pruned (`prune.retention: 0s`).
    pub fn outcome(&self, store: &str) -> &str {
        self.result_store(store)
            .and_then(|s| s["outcome"].as_str())
            .unwrap_or_else(|| panic!("the result has no outcome for {store}\n{}", self.out))
    }

    /// The planned change of one object of `store`.
    pub fn change(&self, store: &str, kind: &str, name: &str) -> &Value {
        self.plan_store(store)
            .and_then(|s| s["changes"].as_array())
            .and_then(|changes| changes.iter().find(|c| c["kind"] == kind && c["name"] == name))
            .unwrap_or_else(|| panic!("the plan has no {kind} {name} change for {store}\n{}", self.out))
    }

    pub fn change_action(&self, store: &str, kind: &str, name: &str) -> &str {
        self.change(store, kind, name)["action"]
            .as_str()
            .unwrap_or_default()
    }

    /// Every change of `store` as `(kind, name, action)`.
    pub fn changes(&self, store: &str) -> Vec<(String, String, String)> {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        self.plan_store(store)
            .and_then(|s| s["changes"].as_array())
            .into_iter()
            .flatten()
            .map(|c| (text(&c["kind"]), text(&c["name"]), text(&c["action"])))
            .collect()
    }
}
