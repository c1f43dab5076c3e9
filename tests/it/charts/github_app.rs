//! storesync's own chart authenticates to GitHub with a token or as a GitHub App, never both:
//! each secret is mounted as a file from an existing Secret and named by its env variable.

use serde_yaml_ng::Value;

use super::helm::{render, run_helm, yaml};
use super::manifest::{get, kind, seq, str_at};

const CHART: &str = "deploy/helm/storesync";

fn values(github: &str) -> Value {
    yaml(&format!(
        "repo: {{url: 'https://x/y.git'}}\ngithub: {{repo: acme/stores, {github}}}\n"
    ))
}

/// A Secret volume: its name, the Secret, and each (key, path).
type SecretVolume = (String, String, Vec<(String, String)>);

/// The container's env (name → value) and its mounts (name → path), and the pod's Secret volumes.
struct Pod {
    env: Vec<(String, String)>,
    mounts: Vec<(String, String)>,
    secrets: Vec<SecretVolume>,
    args: Vec<String>,
}

fn pod(github: &str) -> Pod {
    let docs = render(CHART, "storesync", "stores-system", &values(github));
    let deploy = docs
        .iter()
        .find(|d| kind(d) == "Deployment")
        .expect("a Deployment");
    let spec = get(deploy, "spec.template.spec").unwrap();
    let c = &seq(spec, "containers")[0];
    let text = |v: &Value, path: &str| str_at(v, path).to_owned();
    Pod {
        env: seq(c, "env")
            .iter()
            .map(|e| (text(e, "name"), text(e, "value")))
            .collect(),
        mounts: seq(c, "volumeMounts")
            .iter()
            .map(|m| (text(m, "name"), text(m, "mountPath")))
            .collect(),
        secrets: seq(spec, "volumes")
            .iter()
            .filter(|v| get(v, "secret").is_some())
            .map(|v| {
                let items = seq(v, "secret.items")
                    .iter()
                    .map(|i| (text(i, "key"), text(i, "path")))
                    .collect();
                (text(v, "name"), text(v, "secret.secretName"), items)
            })
            .collect(),
        args: seq(c, "args")
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
    }
}

impl Pod {
    fn env(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The file `path` in the pod: the Secret and key it comes from.
    fn file(&self, path: &str) -> (String, String) {
        let (mount, dir) = self
            .mounts
            .iter()
            .find(|(_, dir)| path.starts_with(&format!("{dir}/")))
            .unwrap_or_else(|| panic!("{path} is on no mount: {:?}", self.mounts));
        let file = &path[dir.len() + 1..];
        let (_, secret, items) = self
            .secrets
            .iter()
            .find(|(name, _, _)| name == mount)
            .unwrap_or_else(|| panic!("the mount {mount} is no Secret volume"));
        let (key, _) = items
            .iter()
            .find(|(_, p)| p == file)
            .unwrap_or_else(|| panic!("{file} not in {items:?}"));
        (secret.clone(), key.clone())
    }
}

#[test]
fn an_app_gets_its_id_and_its_key_as_a_file() {
    // A number from a values file is a float to helm: the id must not turn into 1.234567e+06.
    let pod = pod("app: {id: 1234567, existingSecret: storesync-github-app}");
    assert_eq!(pod.env("STORESYNC_GITHUB_APP_ID"), Some("1234567"));
    let key = pod.env("STORESYNC_GITHUB_APP_KEY_FILE").expect("the key file");
    assert_eq!(
        pod.file(key),
        ("storesync-github-app".to_owned(), "app.pem".to_owned())
    );
    assert_eq!(pod.env("STORESYNC_GITHUB_TOKEN_FILE"), None);
    assert!(
        !pod.args
            .iter()
            .any(|a| a.contains("BEGIN") || a.contains("github-app-key")),
        "{:?}",
        pod.args
    );
    let pod = self::pod("app: {id: '42', existingSecret: app-secret, key: private-key.pem}");
    assert_eq!(pod.env("STORESYNC_GITHUB_APP_ID"), Some("42"));
    let key = pod.env("STORESYNC_GITHUB_APP_KEY_FILE").unwrap();
    assert_eq!(
        pod.file(key),
        ("app-secret".to_owned(), "private-key.pem".to_owned())
    );
}

#[test]
fn a_token_is_a_file_and_no_app_is_configured() {
    let pod = pod("token: {existingSecret: storesync-github}");
    let token = pod.env("STORESYNC_GITHUB_TOKEN_FILE").expect("the token file");
    assert_eq!(
        pod.file(token),
        ("storesync-github".to_owned(), "token".to_owned())
    );
    assert_eq!(pod.env("STORESYNC_GITHUB_APP_ID"), None);
    assert_eq!(pod.env("STORESYNC_GITHUB_APP_KEY_FILE"), None);
    assert!(!pod.mounts.iter().any(|(name, _)| name == "github-app"));
}

#[test]
fn a_token_and_an_app_at_once_or_half_an_app_are_refused() {
    let refused = |github: &str| {
        run_helm(&["template", "storesync", CHART], &values(github))
            .expect_err(&format!("helm template accepted {github}"))
    };
    let both = refused("token: {existingSecret: t}, app: {id: 7, existingSecret: a}");
    assert!(both.contains("keep one"), "{both}");
    for half in ["app: {id: 7}", "app: {existingSecret: a}"] {
        let err = refused(half);
        assert!(err.contains("github.app needs both id"), "{half}: {err}");
    }
    let err = refused("app: {id: my-app, existingSecret: a}");
    assert!(err.contains("numeric id"), "{err}");
}
