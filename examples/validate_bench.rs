//! Worst cases for validating one catalog file: each case is a file of at most 64 KiB (the
//! largest that is read), loaded with `desired::load` several times. Prints, per case, the
//! median wall time, the peak heap allocated during a load, and whether the file was accepted
//! or rejected as expected. Exits 1 when a verdict is wrong or a case is over the target.
//!
//! `cargo run --release --example validate_bench [-- WORD]` (only the cases whose name has WORD)
// A counting global allocator measures peak heap; it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use storesync::desired::{self, MAX_FILE_BYTES, PLATFORM_FILE, RawCatalog, RawContent, RawEntry};

#[path = "support/alloc.rs"]
mod alloc;

use alloc::count;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

const RUNS: usize = 9;
const TARGET_TIME: Duration = Duration::from_millis(50);
const TARGET_HEAP: usize = 20 * 1024 * 1024;
const LIMIT: usize = MAX_FILE_BYTES as usize;

const HEAD: &str = "name: dune\nengine: woocommerce\nplan: small\nowner: team-a\n";

/// Repeats `unit(i)` after `head` while the file stays within 64 KiB, then adds `tail`; returns
/// the file and the number of units.
fn fill(head: &str, tail: &str, unit: impl Fn(usize) -> String) -> (String, usize) {
    let mut text = head.to_string();
    let mut count = 0;
    loop {
        let next = unit(count);
        if text.len() + next.len() + tail.len() > LIMIT {
            break;
        }
        text.push_str(&next);
        count += 1;
    }
    text.push_str(tail);
    (text, count)
}

/// A three-letter key for `i`: `aaa`, `aab`, … (17,576 of them).
fn key(i: usize) -> String {
    [i / 676 % 26, i / 26 % 26, i % 26]
        .iter()
        .map(|d| char::from(b'a' + *d as u8))
        .collect()
}

struct Case {
    name: String,
    /// Where the file goes: a store file, or storesync.yaml.
    platform: bool,
    text: String,
    accepted: bool,
}

fn store(name: String, text: String, accepted: bool) -> Case {
    Case {
        name: format!("store file: {name}"),
        platform: false,
        text,
        accepted,
    }
}

fn platform(name: String, text: String, accepted: bool) -> Case {
    Case {
        name: format!("{PLATFORM_FILE}: {name}"),
        platform: true,
        text,
        accepted,
    }
}

fn cases() -> Vec<Case> {
    let values = format!("{HEAD}values:\n");
    let engine = "engines:\n  woocommerce:\n    chart: woocommerce\n    version: 0.1.0\n    values:\n";
    let mut cases = vec![store(
        "valid (reference)".into(),
        format!("{values}  storeTitle: Dune\n"),
        true,
    )];

    // Nine levels, each a list of nine aliases of the level before: 9^9 leaves per alias of l8.
    let mut laughs = format!("{values}  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let prev = format!("*l{}", i - 1);
        laughs.push_str(&format!("  l{i}: &l{i} [{}]\n", [prev.as_str(); 9].join(", ")));
    }
    let (text, n) = fill(&laughs, "", |i| format!("  x{i}: *l8\n"));
    cases.push(store(
        format!("billion laughs, 9^9 leaves aliased {} times", count(n)),
        text,
        false,
    ));

    let list = vec!["1"; 1000].join(",");
    let (text, n) = fill(&format!("{values}  x: &a [{list}]\n  y: ["), "]\n", |_| {
        "*a,".into()
    });
    cases.push(store(
        format!("alias fan-out, a 1,000-item list aliased {} times", count(n)),
        text,
        false,
    ));
    let (text, n) = fill(
        &format!("{engine}      x: &a [{list}]\n      y: ["),
        "]\n",
        |_| "*a,".into(),
    );
    cases.push(platform(
        format!("alias fan-out in engine values, {} aliases", count(n)),
        text,
        false,
    ));

    for (kind, open, close) in [("flow maps", "{a: ", "}"), ("flow sequences", "[", "]")] {
        let n = (LIMIT - values.len() - 20) / (open.len() + close.len());
        let text = format!("{values}  storeTitle: {}1{}\n", open.repeat(n), close.repeat(n));
        cases.push(store(format!("{} nested {kind}", count(n)), text, false));
    }
    let (text, n) = fill(&format!("{values}  storeTitle:\n    "), "1\n", |_| "- ".into());
    cases.push(store(format!("{} nested block sequences", count(n)), text, false));

    let (text, n) = fill(&format!("{values}  sampleProduct:\n    name: {{"), "}\n", |i| {
        format!("{}: 1,", key(i))
    });
    cases.push(store(
        format!("{} keys under an allowed path", count(n)),
        text,
        true,
    ));
    let (text, n) = fill(&format!("{engine}      {{"), "}\n", |i| format!("{}: 1,", key(i)));
    cases.push(platform(
        format!("{} keys in engine values", count(n)),
        text,
        true,
    ));
    let (text, n) = fill(&format!("{values}  {{"), "}\n", |i| format!("{}: 1,", key(i)));
    cases.push(store(format!("{} disallowed value paths", count(n)), text, false));
    let (text, n) = fill(&format!("{values}  {{"), "}\n", |_| "k: 1,".into());
    cases.push(store(format!("{} duplicate keys", count(n)), text, false));
    let (text, n) = fill(&format!("{values}  storeTitle:\n"), "", |_| {
        "  - {a: 1, a: 2}\n".into()
    });
    cases.push(store(
        format!("{} small maps with a duplicate key each", count(n)),
        text,
        false,
    ));
    let (text, n) = fill(&format!("{values}  {{"), "}\n", |i| {
        format!("{}: !!str x,", key(i))
    });
    cases.push(store(format!("{} tags", count(n)), text, false));

    let (text, _) = fill(&format!("{values}  storeTitle: "), "\n", |_| "x".into());
    cases.push(store("one 64 KiB scalar".into(), text, true));
    let (text, n) = fill(&format!("{values}  storeTitle: word\n"), "", |_| {
        "    word\n".into()
    });
    cases.push(store(
        format!("a plain scalar of {} lines", count(n + 1)),
        text,
        true,
    ));
    let (text, n) = fill(HEAD, "", |i| format!("---\nname: d{i}\n"));
    cases.push(store(format!("{} documents", count(n + 1)), text, false));
    // libyaml words this syntax error; the file has as many flow maps as allows asking it.
    let maps: String = (0..64).map(|i| format!("  m{i}: {{a: 1}}\n")).collect();
    let (text, _) = fill(&format!("{values}{maps}"), "x: y: z\n", |i| {
        format!("  {}: 1\n", key(i))
    });
    cases.push(store("a syntax error at the end of 64 KiB".into(), text, false));
    cases
}

fn raw(case: &Case) -> RawCatalog {
    let file = RawContent::File(case.text.clone().into_bytes());
    let valid = RawContent::File(HEAD.as_bytes().to_vec());
    let (platform, store) = if case.platform {
        (Some(file), valid)
    } else {
        (None, file)
    };
    RawCatalog {
        platform,
        stores_dir: "stores".into(),
        entries: Some(vec![RawEntry {
            path: "stores/dune.yaml".into(),
            name: "dune.yaml".into(),
            content: store,
        }]),
    }
}

fn main() {
    println!("| case | file | median of {RUNS} | peak heap | verdict |");
    println!("|---|---:|---:|---:|---|");
    let filter = std::env::args().nth(1).unwrap_or_default();
    let mut failed = false;
    for case in cases().into_iter().filter(|c| c.name.contains(&filter)) {
        assert!(
            case.text.len() <= LIMIT,
            "{}: {} bytes",
            case.name,
            case.text.len()
        );
        let raw = raw(&case);
        let mut times = Vec::with_capacity(RUNS);
        let mut peak = 0usize;
        let mut accepted = false;
        let mut first = String::new();
        for _ in 0..RUNS {
            let base = alloc::mark();
            let start = Instant::now();
            let result = desired::load(&raw);
            times.push(start.elapsed());
            peak = peak.max(alloc::peak_since(base));
            accepted = result.is_ok();
            first = result
                .err()
                .and_then(|f| f.into_iter().next())
                .map_or(String::new(), |d| {
                    format!("{}:{} {}", d.line, d.column, d.message)
                });
        }
        times.sort();
        let median = times[RUNS / 2];
        let right = accepted == case.accepted;
        let within = median <= TARGET_TIME && peak <= TARGET_HEAP;
        failed |= !right || !within;
        let verdict = match (accepted, right) {
            (true, true) => "accepted, as expected".to_string(),
            (false, true) => format!("rejected, as expected: {first}"),
            (true, false) => "ACCEPTED, expected a rejection".to_string(),
            (false, false) => format!("REJECTED, expected it accepted: {first}"),
        };
        println!(
            "| {} | {:.1} KiB | {:.2} ms | {:.2} MiB | {verdict}{} |",
            case.name,
            case.text.len() as f64 / 1024.0,
            median.as_secs_f64() * 1000.0,
            peak as f64 / (1024.0 * 1024.0),
            if within { "" } else { "; OVER TARGET" },
        );
    }
    println!(
        "\ntarget per file: {} ms, {} MiB; {PLATFORM_FILE} cases load it with one valid store",
        TARGET_TIME.as_millis(),
        TARGET_HEAP / (1024 * 1024)
    );
    if failed {
        std::process::exit(1);
    }
}
