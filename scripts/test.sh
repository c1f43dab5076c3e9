#!/usr/bin/env bash
# The whole test suite, as CI runs it: tools, formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup-tools.sh
export PATH="$PWD/tools/bin:$PATH"

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
