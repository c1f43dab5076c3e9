//! The real-cluster benchmarks, off unless STORESYNC_E2E_BENCH=1 (and STORESYNC_E2E=1); N stores
//! of the tiny engine from STORESYNC_E2E_BENCH_STORES (default 20). See docs/e2e.md.
//!
//! - The sync benchmark: the first sync of N stores, a no-op sync of the same commit, and for
//!   comparison what a naive reconciler pays for the same no-op: N sequential `helm upgrade
//!   --install` with unchanged values.
//! - The rollout benchmark: a platform-wide change of N stores carried in waves (a canary, 25%,
//!   100%; soak STORESYNC_E2E_BENCH_SOAK seconds, default 10) by `storesync apply` of the commit
//!   every 2 s, against the same change without `rollout` and the README's model of it.
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::catalog::{Platform, Rollout, StoreFile, StoresRepo};
use super::cluster::{get, helm_history, release_secret_labels};
use super::harness::{
    E2E_NAMESPACE, ROLLOUT_RECORD, Suite, admin_helm, admin_kubectl, helm, namespace, path_str, run,
    tiny_chart,
};
use super::health::healthy_or_skip;
use super::identity::helm_user;
use super::output::Sync;

const NO_OP_RUNS: usize = 3;
/// `--concurrency` of the suite's `apply` (Suite::apply_args): helm upgrades run this many at a time.
const CONCURRENCY: usize = 4;

fn stores_wanted() -> usize {
    std::env::var("STORESYNC_E2E_BENCH_STORES")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20)
}

/// The suite's hold on the cluster for benchmark `what`; `None` (after printing SKIPPED) unless
/// STORESYNC_E2E_BENCH=1 and the suite is enabled.
fn bench_suite(what: &str) -> Option<Suite> {
    if std::env::var("STORESYNC_E2E_BENCH").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: set STORESYNC_E2E=1, STORESYNC_E2E_BENCH=1 and KUBECONFIG to run the {what} benchmark"
        );
        return None;
    }
    Suite::start(&format!("{what} benchmark"))
}

/// `4 CPUs (AMD EPYC 7B13)`: the count and first model name of /proc/cpuinfo, else the count the
/// process may use.
fn cpus() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let count = info.lines().filter(|l| l.starts_with("processor")).count();
    let model = info
        .lines()
        .filter(|l| l.starts_with("model name"))
        .find_map(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string());
    match (count, model) {
        (0, _) => format!(
            "{} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        (n, Some(model)) => format!("{n} CPUs ({model})"),
        (n, None) => format!("{n} CPUs"),
    }
}

/// The line a benchmark's figures are read with: this machine, the cluster and helm.
fn machine_and_cluster() -> String {
    let server = admin_kubectl(&["version", "-o", "json"], None).json();
    let nodes = admin_kubectl(&["get", "nodes", "-o", "json"], None).json()["items"]
        .as_array()
        .map_or(0, Vec::len);
    let helm_version = admin_helm(&["version", "--short"]).stdout.trim().to_string();
    format!(
        "machine: {}, {}/{}; cluster: Kubernetes {}, {nodes} node(s); helm {helm_version}",
        cpus(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        server["serverVersion"]["gitVersion"].as_str().unwrap_or("?"),
    )
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn per_store(d: Duration, n: usize) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0 / n as f64)
}

#[test]
fn bench_sync_of_many_stores() {
    let Some(suite) = bench_suite("sync") else {
        return;
    };
    let n = stores_wanted();
    let platform = Platform {
        max_stores: n.max(50) as u32,
        ..Platform::default()
    };
    let stores: Vec<String> = (0..n).map(|i| suite.store(&format!("bench-{i:04}"))).collect();
    let repo = StoresRepo::new(&platform);
    for s in &stores {
        repo.put(&StoreFile::new(s).value("message", s));
    }
    let sha = repo.commit(&format!("{n} stores"));

    let first = suite.apply(&repo, &sha, &[]);
    first.expect_code(0);
    assert_eq!(first.result_summary("applied"), n as u64, "{}", first.out);
    let no_ops = no_op_runs(&suite, &repo, &sha, n);

    // The same releases, values and release label, upgraded one after another by helm itself,
    // as the identity storesync gives helm: the restricted one, acting as the store's own.
    let values_dir = tempfile::tempdir().expect("temp dir");
    let mut jobs = Vec::new();
    for s in &stores {
        let ns = namespace(s);
        let values = admin_helm(&["get", "values", s, "-n", &ns, "-o", "yaml"])
            .expect_ok()
            .stdout;
        let file = values_dir.path().join(format!("{s}.yaml"));
        std::fs::write(&file, values).expect("write values");
        let hash = release_secret_labels(s, 1)
            .get("storesync.dev/release-hash")
            .cloned()
            .expect("release hash");
        jobs.push((s.clone(), ns, file, hash));
    }
    let start = Instant::now();
    for (s, ns, file, hash) in &jobs {
        let mut cmd = Command::new(helm());
        cmd.env("KUBECONFIG", &suite.kubeconfig);
        cmd.args([
            "upgrade",
            "--install",
            s,
            path_str(&tiny_chart()),
            "--namespace",
            ns,
            "--version",
            "0.1.0",
        ]);
        cmd.args([
            "--values",
            path_str(file),
            "--labels",
            &format!("storesync.dev/release-hash={hash}"),
        ]);
        cmd.args(["--wait", "--timeout", "3m", "--history-max", "10"]);
        cmd.args(["--kube-as-user", &helm_user(s)]);
        run(cmd, None, Duration::from_secs(240)).expect_ok();
    }
    let helm_loop = start.elapsed();
    assert_eq!(helm_history(&stores[0]).len(), 2, "the helm loop did not upgrade");
    // Same values and label: storesync still sees nothing to do.
    let after = suite.apply(&repo, &sha, &[]);
    after.expect_code(0);
    assert_eq!(after.result_summary("unchanged"), n as u64);

    println!();
    println!("storesync sync benchmark: {n} stores of the tiny engine, --concurrency {CONCURRENCY}");
    println!("{}", machine_and_cluster());
    println!();
    println!("| what | wall time | per store |");
    println!("|---|---:|---:|");
    println!(
        "| first sync: create {n} stores (namespace, guardrails, credentials, helm install --wait) | {} | {} |",
        secs(first.out.elapsed),
        per_store(first.out.elapsed, n)
    );
    println!(
        "| no-op sync of the same commit (median of {NO_OP_RUNS}) | {} | {} |",
        secs(no_ops[NO_OP_RUNS / 2]),
        per_store(no_ops[NO_OP_RUNS / 2], n)
    );
    println!(
        "| {n} × `helm upgrade --install --wait`, unchanged values, sequential | {} | {} |",
        secs(helm_loop),
        per_store(helm_loop, n)
    );
    println!();
}

/// Between the end of one `apply` of the rollout's commit and the start of the next; the daemon
/// waits `storesync::daemon::ROLLOUT_CHECK` (15 s) instead.
const LOOK_EVERY: Duration = Duration::from_secs(2);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound of each wait for N stores to be Healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(300);

/// `soak` of the rollout: STORESYNC_E2E_BENCH_SOAK seconds, default 10.
fn soak_wanted() -> Duration {
    let secs = std::env::var("STORESYNC_E2E_BENCH_SOAK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    Duration::from_secs(secs)
}

fn median(sorted: &[Duration]) -> Option<Duration> {
    sorted.get(sorted.len() / 2).copied()
}

/// `helm upgrade` rounds for `stores` updated CONCURRENCY at a time.
fn rounds(stores: usize) -> u32 {
    u32::try_from(stores.div_ceil(CONCURRENCY)).unwrap_or(u32::MAX)
}

/// storesync's rollout record as the admin reads it (`rollout.json`); `Null` when there is none.
fn rollout_record() -> Value {
    let Some(cm) = get("configmap", Some(E2E_NAMESPACE), ROLLOUT_RECORD) else {
        return Value::Null;
    };
    let text = cm["data"]["rollout.json"].as_str().unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{ROLLOUT_RECORD} is not JSON ({e}): {cm}"))
}

/// The number of revisions of each store's release.
fn revisions(stores: &[String]) -> BTreeMap<String, usize> {
    stores
        .iter()
        .map(|s| (s.clone(), helm_history(s).len()))
        .collect()
}

/// The platform of the rollout benchmark: the engine value `message` for every store.
fn platform(n: usize, message: &str, rollout: Option<Rollout>) -> Platform {
    Platform {
        max_stores: n.max(50) as u32,
        engine_values: json!({ "message": message })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        rollout,
        ..Platform::default()
    }
}

/// What carrying one rollout to its end took, by `apply` of its commit every LOOK_EVERY.
struct Carried {
    /// Stores per wave, as the record fixed them.
    sizes: Vec<usize>,
    /// Per wave: from the start of the `apply` that applied it to the start of the one that
    /// applied the next (the last: to the end of the one that ended the run).
    waves: Vec<Duration>,
    total: Duration,
    /// Each `apply` that only waited (judged the wave and held the rest back), sorted.
    looks: Vec<Duration>,
    /// Start to start of an `apply` that only waited and the next one (the sleep, the look and
    /// reading the record), sorted.
    periods: Vec<Duration>,
    /// The `rollout.line` of the `apply` that ended the run.
    done: String,
}

/// The next `apply` of the rollout: its start, its end and the record after it; a halt fails
/// the benchmark with the record and storesync's output.
fn step(suite: &Suite, repo: &StoresRepo, sha: &str) -> (Instant, Instant, Sync, Value) {
    let start = Instant::now();
    let sync = suite.apply(repo, sha, &[]);
    let end = Instant::now();
    let record = rollout_record();
    assert!(
        record["halt"].is_null(),
        "the rollout halted: {record}\n{}",
        sync.out
    );
    sync.expect_code(0);
    assert_eq!(sync.result_summary("failed"), 0, "{}", sync.out);
    (start, end, sync, record)
}

/// Applies `sha`, which starts a rollout, then again every LOOK_EVERY until the record has no
/// run; each `apply` either applies the next wave (exactly its stores) or only waits.
fn carry_rollout(suite: &Suite, repo: &StoresRepo, sha: &str, soak: Duration) -> Carried {
    let (started, mut applied_end, sync, record) = step(suite, repo, sha);
    let sizes: Vec<usize> = record["run"]["waves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w.as_array().map_or(0, Vec::len))
        .collect();
    assert!(
        sizes.len() >= 2 && record["run"]["wave"] == 0,
        "the change started no rollout: {record}\n{}",
        sync.out
    );
    assert_eq!(sync.result_summary("applied"), sizes[0] as u64, "{}", sync.out);
    let mut wave_starts = vec![started];
    let (mut looks, mut periods) = (Vec::new(), Vec::new());
    let mut last_look: Option<Instant> = None;
    // A wave that never becomes Healthy halts at HEALTH_TIMEOUT; this only bounds a stuck loop.
    let bound = HEALTH_TIMEOUT + soak + Duration::from_secs(60);
    loop {
        std::thread::sleep(LOOK_EVERY);
        let (start, end, sync, record) = step(suite, repo, sha);
        if let Some(look) = last_look.take() {
            periods.push(start - look);
        }
        let applied = sync.result_summary("applied");
        if record["run"].is_null() {
            assert_eq!(
                applied, 0,
                "the run ended in an apply that upgraded\n{}",
                sync.out
            );
            let done = sync.json["rollout"]["line"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(
                done.starts_with("rollout done:"),
                "the apply that ended the run says `{done}`\n{}",
                sync.out
            );
            let mut waves: Vec<Duration> = wave_starts.windows(2).map(|w| w[1] - w[0]).collect();
            waves.push(end - wave_starts[wave_starts.len() - 1]);
            looks.sort();
            periods.sort();
            return Carried {
                sizes,
                waves,
                total: end - started,
                looks,
                periods,
                done,
            };
        }
        let wave = record["run"]["wave"].as_u64().unwrap_or_default() as usize;
        if wave == wave_starts.len() {
            assert_eq!(
                applied,
                sizes[wave] as u64,
                "wave {} of {sizes:?}\n{}",
                wave + 1,
                sync.out
            );
            wave_starts.push(start);
            applied_end = end;
        } else {
            assert_eq!(wave + 1, wave_starts.len(), "the record skipped a wave: {record}");
            assert_eq!(applied, 0, "an apply that waited upgraded a store\n{}", sync.out);
            looks.push(sync.out.elapsed);
            last_look = Some(start);
        }
        assert!(
            applied_end.elapsed() < bound,
            "wave {} of {sizes:?} did not end within {bound:?}; the record: {record}\nthe last apply:\n{}",
            wave + 1,
            sync.out
        );
    }
}

/// The rollout benchmark: N stores installed (not timed), the same platform-wide change applied
/// once to all N without `rollout` (and no-op syncs of it, for the sync's own cost), then another
/// such change carried in waves by `apply` every LOOK_EVERY; prints both against the README's
/// model of a rollout's length.
#[test]
fn bench_rollout_of_many_stores() {
    let Some(suite) = bench_suite("rollout") else {
        return;
    };
    let n = stores_wanted();
    assert!(
        n >= 2,
        "a rollout needs two stores or more; STORESYNC_E2E_BENCH_STORES is {n}"
    );
    let soak = soak_wanted();
    let stores: Vec<String> = (0..n).map(|i| suite.store(&format!("roll-{i:04}"))).collect();
    let repo = StoresRepo::new(&platform(n, "installed", None));
    let args = suite.apply_args(&repo, "HEAD", &[]);
    let at = args
        .iter()
        .position(|a| a == "--concurrency")
        .expect("--concurrency")
        + 1;
    assert_eq!(args[at], CONCURRENCY.to_string(), "the model's CONCURRENCY");

    // One store first: on a cluster whose pods never run, a single helm --wait times out, not N/4.
    let needs = "a rollout's waves end by store health, which needs pods that run";
    repo.put(&StoreFile::new(&stores[0]));
    let probe = repo.commit("one store");
    let installed = suite.apply(&repo, &probe, &[]);
    if !healthy_or_skip(&suite, &installed, &stores[..1], HEALTHY_WITHIN, needs) {
        return;
    }
    for s in &stores {
        repo.put(&StoreFile::new(s));
    }
    let all = repo.commit(&format!("{n} stores"));
    let installed = suite.apply(&repo, &all, &[]);
    if !healthy_or_skip(&suite, &installed, &stores, HEALTHY_WITHIN, needs) {
        return;
    }

    // The change without `rollout`: every store at once.
    repo.platform(&platform(n, "all at once", None));
    let sha = repo.commit("every store at once");
    let at_once = suite.apply(&repo, &sha, &[]);
    at_once.expect_code(0);
    assert_eq!(at_once.result_summary("applied"), n as u64, "{}", at_once.out);
    let no_ops = no_op_runs(&suite, &repo, &sha, n);
    let no_op = no_ops[NO_OP_RUNS / 2];
    if !healthy_or_skip(&suite, &at_once, &stores, HEALTHY_WITHIN, needs) {
        return;
    }

    // The same kind of change in waves (`Rollout` holds texts as written: these two are leaked once).
    let rollout = Rollout {
        canaries: vec![stores[0].clone()],
        waves: vec!["25%", "100%"],
        max_unhealthy: 0,
        health_timeout: format!("{}s", HEALTH_TIMEOUT.as_secs()).leak(),
        soak: format!("{}s", soak.as_secs()).leak(),
        on_failure: "halt",
    };
    repo.platform(&platform(n, "in waves", Some(rollout)));
    let sha = repo.commit("every store in waves");
    let before = revisions(&stores);
    let carried = carry_rollout(&suite, &repo, &sha, soak);
    let after = revisions(&stores);
    let behind: Vec<&String> = stores.iter().filter(|s| after[*s] != before[*s] + 1).collect();
    assert!(
        behind.is_empty(),
        "not exactly one revision further after the rollout: {behind:?}\nbefore {before:?}\nafter {after:?}"
    );

    print_rollout(n, soak, &at_once, no_op, &carried);
}

/// The rollout benchmark's table: what was measured, and the README's model of it.
fn print_rollout(n: usize, soak: Duration, at_once: &Sync, no_op: Duration, c: &Carried) {
    let of = c.sizes.len();
    let s = |d: Duration| d.as_secs_f64();
    // One round of CONCURRENCY concurrent `helm upgrade --wait`: the all-at-once apply less a sync
    // that upgrades nothing, spread over its rounds.
    let round = at_once.out.elapsed.saturating_sub(no_op) / rounds(n);
    let period = median(&c.periods).unwrap_or(LOOK_EVERY);
    let model = |size: usize, every: Duration| round * rounds(size) + soak + every;
    let total_model = |every: Duration| c.sizes.iter().map(|k| model(*k, every)).sum::<Duration>();
    let daemon = storesync::daemon::ROLLOUT_CHECK;
    let sizes: Vec<String> = c.sizes.iter().map(usize::to_string).collect();

    println!();
    println!(
        "storesync rollout benchmark: {n} stores of the tiny engine, --concurrency {CONCURRENCY}; rollout \
         {{canaries: [first store], waves: [25%, 100%], soak: {}s, healthTimeout: {}s}}; `storesync apply` \
         of the commit again {}s after the last one ended (the daemon looks every {}s)",
        soak.as_secs(),
        HEALTH_TIMEOUT.as_secs(),
        LOOK_EVERY.as_secs(),
        daemon.as_secs()
    );
    println!("{}", machine_and_cluster());
    println!();
    println!("| what | measured | README model |");
    println!("|---|---:|---:|");
    println!(
        "| rollout of {n} stores in {of} waves ({}), first `apply` to the one that ended it | {} | {:.2} s |",
        sizes.join(" + "),
        secs(c.total),
        s(total_model(period))
    );
    for (i, (size, took)) in c.sizes.iter().zip(&c.waves).enumerate() {
        let stores = if *size == 1 {
            "1 store".to_string()
        } else {
            format!("{size} stores")
        };
        let what = if i == 0 {
            format!("canary, {stores}")
        } else {
            stores
        };
        let until = if i + 1 == of {
            "the `apply` that ended the run".to_string()
        } else {
            format!("the `apply` of wave {}/{of}", i + 2)
        };
        println!(
            "| wave {}/{of} ({what}): its `apply` to {until} | {} | {} × {:.2} + {} + {:.2} = {:.2} s |",
            i + 1,
            secs(*took),
            rounds(*size),
            s(round),
            soak.as_secs(),
            s(period),
            s(model(*size, period))
        );
    }
    let looks = &c.looks;
    println!(
        "| a look: an `apply` that only waited, median / max of {} | {} / {} | |",
        looks.len(),
        median(looks).map_or("-".into(), secs),
        looks.last().copied().map_or("-".into(), secs)
    );
    println!(
        "| period between looks: {}s sleep, the look, reading the record (median) | {} | |",
        LOOK_EVERY.as_secs(),
        secs(period)
    );
    println!(
        "| the same change without `rollout`: one `apply` of all {n} | {} | |",
        secs(at_once.out.elapsed)
    );
    println!(
        "| a no-op `apply` without `rollout` (median of {NO_OP_RUNS}) | {} | |",
        secs(no_op)
    );
    println!();
    println!(
        "README model, per wave: ceil(stores / {CONCURRENCY}) × r + soak + P. r, one round of {CONCURRENCY} \
         concurrent `helm upgrade --wait` = (all at once − no-op) / ceil({n} / {CONCURRENCY}) = {:.2} s; \
         P = the period between looks above. With the daemon's looks (P = {} s) it predicts {:.2} s for \
         this rollout. The soak starts at the first look that finds the wave Healthy, so a wave may take \
         up to one P more than the model. The last `apply` said: `{}`.",
        s(round),
        daemon.as_secs(),
        s(total_model(daemon)),
        c.done
    );
    println!();
}

/// `NO_OP_RUNS` applies of `sha`, each a no-op of its `n` stores, their times sorted.
fn no_op_runs(suite: &Suite, repo: &StoresRepo, sha: &str, n: usize) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..NO_OP_RUNS)
        .map(|_| {
            let sync = suite.apply(repo, sha, &[]);
            sync.expect_code(0);
            assert_eq!(
                sync.result_summary("unchanged"),
                n as u64,
                "not a no-op:\n{}",
                sync.out
            );
            sync.out.elapsed
        })
        .collect();
    times.sort();
    times
}
