#!/usr/bin/env bash
# The sync benchmark (tests/e2e/bench.rs; docs/e2e.md): the first sync of N stores, a
# no-op sync of the same commit, and N sequential no-op `helm upgrade --install` for comparison.
# Release build; prints a Markdown table with the machine and cluster it ran on.
#
#   scripts/bench-sync.sh                    # on a throwaway kind/k3d cluster (scripts/e2e-kind.sh)
#   scripts/bench-sync.sh --current          # on the cluster of KUBECONFIG (no stores but the suite's)
#   STORESYNC_E2E_BENCH_STORES=50 scripts/bench-sync.sh     # N (default 20)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export STORESYNC_E2E_BENCH=1
filter=(--release bench::bench_sync_of_many_stores)

if [[ "${1:-}" == "--current" ]]; then
  ./scripts/setup-tools.sh
  export PATH="$root/tools/bin:$PATH"
  STORESYNC_E2E=1 exec cargo nextest run --test e2e --no-capture "${filter[@]}"
fi
exec ./scripts/e2e-kind.sh "${filter[@]}"
