#!/usr/bin/env bash
# The rollout benchmark (tests/e2e/bench.rs; docs/e2e.md): N stores installed, one platform-wide
# change applied to all N at once without `rollout`, then another carried in waves (a canary, 25%,
# 100%) by `storesync apply` of its commit every 2 s, with the time of each wave and of each look.
# Release build; prints a Markdown table with the machine, the cluster and the README's model.
#
#   scripts/bench-rollout.sh                 # on a throwaway kind/k3d cluster (scripts/e2e-kind.sh)
#   scripts/bench-rollout.sh --current       # on the cluster of KUBECONFIG (no stores but the suite's)
#   STORESYNC_E2E_BENCH_STORES=40 scripts/bench-rollout.sh    # N (default 20)
#   STORESYNC_E2E_BENCH_SOAK=30 scripts/bench-rollout.sh      # soak in seconds (default 10)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export STORESYNC_E2E_BENCH=1
filter=(--release bench::bench_rollout_of_many_stores)

if [[ "${1:-}" == "--current" ]]; then
  ./scripts/setup-tools.sh
  export PATH="$root/tools/bin:$PATH"
  STORESYNC_E2E=1 exec cargo nextest run --test e2e --no-capture "${filter[@]}"
fi
exec ./scripts/e2e-kind.sh "${filter[@]}"
