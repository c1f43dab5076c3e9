#!/usr/bin/env python3
"""Benchmark `storesync validate` and `storesync plan --offline` on synthetic catalogs.

Generates catalogs of 1,000 and 10,000 stores (both engines, all plans, some values), then
runs each command several times and reports the median wall time and peak RSS, next to the
time to `cat` the same store files. Usage:

    cargo build --release && python3 scripts/bench-catalog.py [--runs 7] [--sizes 1000,10000]
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = ["woocommerce", "medusa"]
PLANS = ["small", "medium", "large"]


def generate(dest, n):
    stores = os.path.join(dest, "stores")
    os.makedirs(stores)
    with open(os.path.join(dest, "storesync.yaml"), "w") as f:
        f.write(f"baseDomain: shop.example.com\nlimits:\n  maxStores: {n}\n  maxStoresPerOwner: {n}\n  maxPrunesPerSync: 5\n")
    for i in range(n):
        name = f"store-{i:05d}"
        engine = ENGINES[i % 2]
        title = "storeTitle" if engine == "woocommerce" else "storeName"
        with open(os.path.join(stores, f"{name}.yaml"), "w") as f:
            f.write(
                f"# Store {i} of the benchmark catalog.\n"
                f"name: {name}\nengine: {engine}\nplan: {PLANS[i % 3]}\nowner: team-{i % 97}\n"
                f"values:\n  {title}: Store number {i}\n  currency: EUR\n  admin:\n    email: ops{i}@example.com\n"
            )


# GNU time reports the peak RSS of the command alone. Without it, the peak RSS the kernel
# reports for a child also counts the pages of this Python process it was forked from.
GNU_TIME = os.access("/usr/bin/time", os.X_OK)


def measure(argv, runs, cwd=None):
    """Median wall seconds and max peak RSS (KiB) of `runs` executions, output discarded."""
    times, rss = [], []
    for _ in range(runs):
        with tempfile.NamedTemporaryFile("r") as report:
            full = ["/usr/bin/time", "-f", "%M", "-o", report.name] + argv if GNU_TIME else argv
            start = time.perf_counter()
            proc = subprocess.Popen(full, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - start
            err = proc.stderr.read().decode()
            proc.stderr.close()
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                sys.exit(f"{' '.join(argv[:3])} exited {code}: {err[:2000]}")
            times.append(elapsed)
            rss.append(int(report.read().split()[-1]) if GNU_TIME else usage.ru_maxrss)
    return statistics.median(times), max(rss)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "storesync"))
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: run `cargo build --release` first")

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}")
    print(f"runs per figure: {args.runs} (median wall time; peak RSS is the largest of the runs)")
    if not GNU_TIME:
        print("note: /usr/bin/time not found; peak RSS includes the forking Python process (~15 MiB)")
    print()
    print(f"{'stores':>7} {'command':<22} {'median':>9} {'vs cat':>7} {'peak RSS':>10}")
    work = tempfile.mkdtemp(prefix="storesync-bench-")
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            dest = os.path.join(work, f"catalog-{n}")
            generate(dest, n)
            files = sorted(os.listdir(os.path.join(dest, "stores")))
            cat_t, cat_rss = measure(["cat"] + [os.path.join("stores", f) for f in files], args.runs, cwd=dest)
            rows = [("cat stores/*", cat_t, cat_rss)]
            for label, cmd in [
                ("validate", ["validate"]),
                ("plan --offline", ["plan", "--offline"]),
                ("plan --offline (json)", ["plan", "--offline", "--output", "json"]),
            ]:
                t, rss = measure([args.binary] + cmd + ["--repo", dest], args.runs)
                rows.append((label, t, rss))
            for label, t, rss in rows:
                print(f"{n:>7} {label:<22} {t * 1000:>7.1f}ms {t / cat_t:>6.1f}x {rss / 1024:>7.1f}MiB")
            shutil.rmtree(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
