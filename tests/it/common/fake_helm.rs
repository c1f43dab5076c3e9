//! A recording `helm`: every invocation is logged with its argument vector and values file,
//! `upgrade` renders the chart with the real helm (`helm template`, same chart, same values),
//! and release state is kept in files the fake API server serves as Helm's release Secrets:
//! `releases/<namespace>__<name>` (a line per revision), `manifests/<namespace>__<name>__<rev>.yaml`
//! (what the revision rendered), and `journal`, a line per release change, from which the fake
//! API server applies the rendered objects as Helm would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub struct FakeHelm {
    pub dir: tempfile::TempDir,
}

/// The real helm: STORESYNC_HELM, tools/bin/helm, or `helm` on PATH.
pub fn real_helm() -> PathBuf {
    if let Some(p) = std::env::var_os("STORESYNC_HELM") {
        return PathBuf::from(p);
    }
    let tools = crate::common::repo_root().join("tools/bin/helm");
    if tools.exists() {
        return tools;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("helm"))
                .find(|p| p.exists())
        })
        .expect("helm not found: run scripts/setup-tools.sh (CI does)")
}

const SCRIPT: &str = r#"#!/usr/bin/env bash
# Recording helm for tests. Releases: releases/<namespace>__<name>, a line per revision:
# "<revision> <status> <release-hash>".
set -u
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$here/releases" "$here/values" "$here/manifests"
# Two operations on one release at the same time (two replicas leading) are noted in overlaps,
# before the lock below serializes them; a killed helm leaves a file whose process is gone.
key=$(a=("$@"); k=""; n=""; i=1
  while [ "$i" -lt "${#a[@]}" ]; do
    case "${a[$i]}" in
      --namespace) k="${a[$((i + 1))]}"; i=$((i + 2)) ;;
      --values|--labels|--version|--timeout|--history-max|--server-side|--kube-as-user) i=$((i + 2)) ;;
      --*) i=$((i + 1)) ;;
      *) [ -z "$n" ] && n="${a[$i]}"; i=$((i + 1)) ;;
    esac
  done; echo "${k}__${n}")
mkdir -p "$here/running"
running="$here/running/$key"
if [ -e "$running" ] && kill -0 "$(cat "$running")" 2>/dev/null; then
  echo "$key $(cat "$running") $$" >> "$here/overlaps"
fi
echo $$ > "$running"
trap 'rm -f "$running"' EXIT
echo "$key $$ $1" >> "$here/operations"
# storesync runs helm for several stores at once; keep the log and numbering consistent.
exec 9>"$here/lock"
flock 9
n=$(( $(wc -l < "$here/calls.log" 2>/dev/null || echo 0) + 1 ))
( IFS=$'\x1f'; printf '%s\n' "$*" ) >> "$here/calls.log"
mkdir -p "$here/env"
env -0 > "$here/env/$n"
cmd="$1"; shift
positional=(); ns=""; values=""; labels=""; user=""; reuse=0; install=0
while [ $# -gt 0 ]; do
  case "$1" in
    --reset-then-reuse-values) reuse=1; shift ;;
    --install) install=1; shift ;;
    --namespace) ns="$2"; shift 2 ;;
    --values) values="$2"; shift 2 ;;
    --labels) labels="$2"; shift 2 ;;
    --kube-as-user) user="$2"; shift 2 ;;
    --version|--timeout|--history-max|--server-side) shift 2 ;;
    --*) shift ;;
    *) positional+=("$1"); shift ;;
  esac
done
name="${positional[0]}"
rel="$here/releases/${ns}__${name}"
# storesync's own identity may not write workloads or release Secrets: helm must act as the
# store's ServiceAccount, which RBAC confines to the store's namespace.
if [ "$user" != "system:serviceaccount:${ns}:storesync-helm" ]; then
  echo "Error: secrets is forbidden: User \"${user:-system:serviceaccount:storesync:storesync}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"${ns}\"" >&2
  exit 1
fi
last=$(tail -n 1 "$rel" 2>/dev/null | cut -d' ' -f1); last=${last:-0}
# The API server goes away while helm runs: helm fails as the real one does, and stays failing
# (for storesync's reachability check too) until the test brings the server back.
if [ -e "$here/cut-cluster-during-helm" ] || [ -e "$here/cluster-down" ]; then
  touch "$here/cluster-down"
  echo "Error: Kubernetes cluster unreachable: Get \"https://127.0.0.1:6443/version\": dial tcp 127.0.0.1:6443: connect: connection refused" >&2
  exit 1
fi
# A slow helm, to hold a sync open while a test sends more triggers.
if [ -e "$here/slow" ]; then sleep "$(cat "$here/slow")"; fi
case "$cmd" in
  upgrade)
    chart="${positional[1]}"
    cp "$values" "$here/values/$n-$name.yaml"
    if [ "$install" = 0 ] && [ "$last" = 0 ]; then
      echo "Error: UPGRADE FAILED: \"$name\" has no deployed releases" >&2
      exit 1
    fi
    if [ -e "$here/fail-upgrade-$name" ]; then
      echo "Error: UPGRADE FAILED: simulated failure for $name $(cat "$here/fail-upgrade-$name")" >&2
      exit 1
    fi
    # The values of a revision are a chain of files, merged in order as helm merges --values:
    # --reset-then-reuse-values starts from the chain of the last revision.
    mkdir -p "$here/chain"
    chain=""
    if [ "$reuse" = 1 ]; then chain=$(cat "$here/chain/${ns}__${name}__${last}" 2>/dev/null); fi
    chain="$chain $here/values/$n-$name.yaml"
    echo "$chain" > "$here/chain/${ns}__${name}__$((last + 1))"
    set --
    for f in $chain; do set -- "$@" --values "$f"; done
    if ! "@REAL_HELM@" template "$name" "$chart" --namespace "$ns" "$@" > "$here/values/$n-$name.rendered.yaml"; then
      echo "Error: the chart does not render with these values" >&2
      exit 1
    fi
    hash="${labels#storesync.dev/release-hash=}"
    [ -e "$rel" ] && sed -i 's/ deployed / superseded /' "$rel"
    echo "$((last + 1)) deployed $hash" >> "$rel"
    cp "$here/values/$n-$name.rendered.yaml" "$here/manifests/${ns}__${name}__$((last + 1)).yaml"
    echo "apply $ns $name $((last + 1))" >> "$here/journal"
    ;;
  rollback)
    target="${positional[1]}"
    hash=$(awk -v r="$target" '$1 == r { print $3 }' "$rel")
    sed -i -E 's/ (pending-[a-z]+|deployed) / superseded /' "$rel"
    echo "$((last + 1)) deployed ${hash:--}" >> "$rel"
    cp "$here/chain/${ns}__${name}__${target}" "$here/chain/${ns}__${name}__$((last + 1))" 2>/dev/null
    if [ -e "$here/manifests/${ns}__${name}__${target}.yaml" ]; then
      cp "$here/manifests/${ns}__${name}__${target}.yaml" "$here/manifests/${ns}__${name}__$((last + 1)).yaml"
      echo "apply $ns $name $((last + 1))" >> "$here/journal"
    fi
    ;;
  uninstall)
    rm -f "$rel"
    echo "delete $ns $name 0" >> "$here/journal"
    ;;
  *)
    echo "fake helm: unexpected command $cmd" >&2
    exit 2
    ;;
esac
"#;

impl FakeHelm {
    pub fn new() -> FakeHelm {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = SCRIPT.replace("@REAL_HELM@", &real_helm().display().to_string());
        let path = dir.path().join("helm");
        std::fs::write(&path, script).expect("write fake helm");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::create_dir_all(dir.path().join("releases")).expect("releases dir");
        FakeHelm { dir }
    }

    pub fn binary(&self) -> PathBuf {
        self.dir.path().join("helm")
    }

    pub fn releases_dir(&self) -> PathBuf {
        self.dir.path().join("releases")
    }

    /// A release installed without running helm (for catalogs too large to install one by
    /// one): revision 1, deployed, with `manifest` as what it rendered.
    pub fn seed_release(&self, namespace: &str, name: &str, hash: &str, manifest: &str) {
        let dir = self.dir.path();
        std::fs::create_dir_all(dir.join("manifests")).expect("manifests dir");
        std::fs::write(
            dir.join(format!("manifests/{namespace}__{name}__1.yaml")),
            manifest,
        )
        .expect("manifest");
        self.set_release(namespace, name, &[(1, "deployed", hash)]);
        use std::io::Write;
        let mut journal = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("journal"))
            .expect("journal");
        writeln!(journal, "apply {namespace} {name} 1").expect("journal line");
    }

    /// Every invocation so far, as argument vectors.
    pub fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\x1f').map(String::from).collect())
            .collect()
    }

    /// The environment the n-th invocation (1-based) ran with.
    pub fn env(&self, n: usize) -> std::collections::BTreeMap<String, String> {
        let raw = std::fs::read(self.dir.path().join(format!("env/{n}"))).expect("environment file");
        String::from_utf8_lossy(&raw)
            .split('\0')
            .filter_map(|entry| entry.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The values file given to the n-th invocation (1-based) for release `name`.
    pub fn values(&self, n: usize, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("values/{n}-{name}.yaml"))).expect("values file")
    }

    pub fn rendered(&self, n: usize, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("values/{n}-{name}.rendered.yaml")))
            .expect("rendered")
    }

    /// Sets the revisions of a release, as `(revision, status, hash)`.
    pub fn set_release(&self, namespace: &str, name: &str, revisions: &[(u32, &str, &str)]) {
        let text: String = revisions
            .iter()
            .map(|(r, s, h)| format!("{r} {s} {h}\n"))
            .collect();
        std::fs::write(self.releases_dir().join(format!("{namespace}__{name}")), text).expect("release file");
    }

    pub fn release(&self, namespace: &str, name: &str) -> Option<String> {
        std::fs::read_to_string(self.releases_dir().join(format!("{namespace}__{name}"))).ok()
    }

    /// Every later invocation sleeps this long first.
    pub fn slow_down(&self, seconds: f64) {
        std::fs::write(self.dir.path().join("slow"), seconds.to_string()).expect("flag");
    }

    /// Operations that began while another on the same release was still running:
    /// `<namespace>__<name> <pid running> <pid starting>`.
    pub fn overlaps(&self) -> Vec<String> {
        self.lines("overlaps")
    }

    /// Every operation begun: `<namespace>__<name> <pid> <command>`.
    pub fn operations(&self) -> Vec<String> {
        self.lines("operations")
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// The next helm run takes the fake API server down (for helm and storesync alike) and fails
    /// as helm does when the cluster is unreachable; [`FakeHelm::restore_cluster`] brings it back.
    pub fn cut_cluster_during_helm(&self) {
        std::fs::write(self.dir.path().join("cut-cluster-during-helm"), "").expect("flag");
    }

    pub fn restore_cluster(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("cut-cluster-during-helm"));
        let _ = std::fs::remove_file(self.dir.path().join("cluster-down"));
    }

    pub fn fail_upgrades_of(&self, name: &str) {
        self.fail_upgrades_saying(name, "");
    }

    /// Upgrades of `name` fail, helm's error ending with `message`.
    pub fn fail_upgrades_saying(&self, name: &str, message: &str) {
        std::fs::write(self.dir.path().join(format!("fail-upgrade-{name}")), message).expect("flag");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
