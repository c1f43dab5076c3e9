#!/usr/bin/env bash
# The end-to-end suite (tests/e2e/main.rs) on a throwaway cluster: creates a kind cluster (or k3d when
# kind is not on PATH; both run on Docker), runs the suite with STORESYNC_E2E=1, deletes the
# cluster, and exits with the suite's status. No ingress controller is needed. See docs/e2e.md.
#
#   scripts/e2e-kind.sh                      # the whole suite
#   scripts/e2e-kind.sh stuck_release        # arguments go to `cargo nextest run` (filters, --release)
#
#   STORESYNC_E2E_PROVIDER=kind|k3d          # default: kind if on PATH, else k3d
#   STORESYNC_E2E_CLUSTER=NAME               # default: storesync-e2e
#   STORESYNC_E2E_KEEP=1                     # keep the cluster (prints its KUBECONFIG) for debugging
#   KIND_NODE_IMAGE / K3S_IMAGE              # node image (default: the tool's own)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

name="${STORESYNC_E2E_CLUSTER:-storesync-e2e}"
provider="${STORESYNC_E2E_PROVIDER:-}"
if [[ -z "$provider" ]]; then
  if command -v kind >/dev/null 2>&1; then
    provider=kind
  elif command -v k3d >/dev/null 2>&1; then
    provider=k3d
  else
    echo "e2e: neither kind nor k3d is on PATH; install one of them (and Docker)" >&2
    exit 2
  fi
fi
case "$provider" in
  kind | k3d) ;;
  *) echo "e2e: STORESYNC_E2E_PROVIDER must be kind or k3d, not '$provider'" >&2; exit 2 ;;
esac

./scripts/setup-tools.sh
export PATH="$root/tools/bin:$PATH"
for tool in "$provider" docker kubectl helm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "e2e: '$tool' is required on PATH" >&2
    exit 2
  fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "e2e: cargo-nextest is required (cargo install cargo-nextest --locked)" >&2
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "e2e: the Docker daemon is not reachable ($provider runs its nodes as containers)" >&2
  exit 2
fi

work="$(mktemp -d)"
# The cluster's own kubeconfig: the caller's ~/.kube/config and current context are never touched.
export KUBECONFIG="$work/kubeconfig"

delete_cluster() {
  case "$provider" in
    kind) kind delete cluster --name "$name" --kubeconfig "$KUBECONFIG" ;;
    k3d) k3d cluster delete "$name" ;;
  esac
}

finish() {
  local status=$?
  if [[ "${STORESYNC_E2E_KEEP:-0}" == 1 ]]; then
    echo "e2e: keeping $provider cluster '$name': export KUBECONFIG=$KUBECONFIG"
  else
    echo "e2e: deleting $provider cluster '$name'"
    delete_cluster || echo "e2e: could not delete cluster '$name'; delete it by hand" >&2
    rm -rf "$work"
  fi
  exit "$status"
}
trap finish EXIT

echo "e2e: creating $provider cluster '$name'"
case "$provider" in
  kind)
    kind create cluster --name "$name" --kubeconfig "$KUBECONFIG" --wait 180s \
      ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
    ;;
  k3d)
    # Traefik is k3s's bundled ingress controller: the suite needs none.
    k3d cluster create "$name" --wait --timeout 180s \
      --kubeconfig-update-default=false --kubeconfig-switch-context=false \
      --k3s-arg "--disable=traefik@server:*" \
      ${K3S_IMAGE:+--image "$K3S_IMAGE"}
    k3d kubeconfig get "$name" >"$KUBECONFIG"
    ;;
esac
kubectl wait --for=condition=Ready nodes --all --timeout=180s
kubectl version

STORESYNC_E2E=1 cargo nextest run --test e2e --no-capture "$@"
