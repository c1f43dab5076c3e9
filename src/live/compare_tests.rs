//! Field-by-field comparison of rendered and live objects.
use serde_json::{Value, json};

use super::*;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "acme-wordpress", "labels": {"app.kubernetes.io/name": "woocommerce"}},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"creationTimestamp": null},
                "spec": {
                    "containers": [{
                        "name": "wordpress",
                        "image": "wordpress:7.1.0",
                        "ports": [{"name": "http", "containerPort": 80}],
                        "env": [{"name": "WORDPRESS_DB_NAME", "value": "wordpress"}],
                        "resources": {"limits": {"cpu": 1, "memory": "1024Mi"}},
                        "securityContext": {"privileged": false}
                    }],
                    "volumes": [{"name": "creds", "secret": {"secretName": "store-credentials", "defaultMode": 288}}],
                    "hostNetwork": false
                }
            }
        }
    })
}

/// `deployment()` as an API server returns it: defaults filled in, bookkeeping added, quantities
/// rewritten, and the fields owned by helm.
fn served() -> Value {
    let mut live = deployment();
    live["metadata"]["uid"] = json!("u-1");
    live["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
    live["metadata"]["labels"]["team"] = json!("added-by-someone");
    live["metadata"]["managedFields"] = json!([{
        "manager": "helm", "operation": "Apply",
        "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"wordpress\"}": {".": {}, "f:image": {}, "f:name": {}}
        }}}}}
    }]);
    live["spec"]["revisionHistoryLimit"] = json!(10);
    live["spec"]["template"]["metadata"] = json!({});
    let c = &mut live["spec"]["template"]["spec"]["containers"][0];
    c["imagePullPolicy"] = json!("IfNotPresent");
    c["terminationMessagePath"] = json!("/dev/termination-log");
    c["ports"][0]["protocol"] = json!("TCP");
    c["resources"]["limits"] = json!({"cpu": "1", "memory": "1Gi"});
    c["securityContext"] = json!({});
    live["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "injected-sidecar", "image": "proxy:1"}));
    live["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("hostNetwork");
    live["status"] = json!({"replicas": 1, "readyReplicas": 1});
    live
}

#[test]
fn server_defaults_bookkeeping_and_others_additions_are_not_drift() {
    assert_eq!(drifted_fields(&deployment(), &served()), Vec::<String>::new());
}

#[test]
fn hand_edits_of_fields_the_chart_sets_are_drift() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("spec.replicas", Box::new(|l| l["spec"]["replicas"] = json!(0))),
        (
            r#"spec.template.spec.containers[name="wordpress"].image"#,
            Box::new(|l| l["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil:1")),
        ),
        (
            r#"spec.template.spec.containers[name="wordpress"].env[name="WORDPRESS_DB_NAME"].value"#,
            Box::new(|l| l["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("other")),
        ),
        (
            r#"spec.template.spec.containers[name="wordpress"].env[name="WORDPRESS_DB_NAME"]"#,
            Box::new(|l| l["spec"]["template"]["spec"]["containers"][0]["env"] = json!([])),
        ),
        (
            r#"spec.template.spec.containers[name="wordpress"].resources.limits.memory"#,
            Box::new(|l| {
                l["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("2Gi")
            }),
        ),
        (
            r#"metadata.labels["app.kubernetes.io/name"]"#,
            Box::new(|l| {
                l["metadata"]["labels"]
                    .as_object_mut()
                    .unwrap()
                    .remove("app.kubernetes.io/name");
            }),
        ),
    ];
    for (field, edit) in cases {
        let mut live = served();
        edit(&mut live);
        assert_eq!(drifted_fields(&deployment(), &live), [field], "{field}");
    }
}

#[test]
fn configmap_keys_are_compared_and_named() {
    let rendered = json!({"kind": "ConfigMap", "metadata": {"name": "acme-apache"},
        "data": {"php.ini": "memory_limit = 256M\n", "PORT": "8080"}});
    let mut live = rendered.clone();
    assert!(drifted_fields(&rendered, &live).is_empty());
    live["data"]["php.ini"] = json!("memory_limit = 8G\n");
    live["data"]["extra"] = json!("added by someone");
    assert_eq!(drifted_fields(&rendered, &live), [r#"data["php.ini"]"#]);
    live["data"].as_object_mut().unwrap().remove("PORT");
    assert_eq!(
        drifted_fields(&rendered, &live),
        ["data.PORT", r#"data["php.ini"]"#]
    );
}

#[test]
fn a_replica_count_an_autoscaler_owns_is_not_drift_but_one_a_person_set_is() {
    let mut live = served();
    live["spec"]["replicas"] = json!(3);
    // Ownership moved with the write: helm no longer owns spec.replicas.
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
        .as_object_mut()
        .unwrap()
        .remove("f:replicas");
    let scaled_by = |manager: &str, subresource: Option<&str>| {
        let mut l = live.clone();
        let mut entry = json!({"manager": manager, "operation": "Update",
            "fieldsV1": {"f:spec": {"f:replicas": {}}}});
        if let Some(s) = subresource {
            entry["subresource"] = json!(s);
        }
        l["metadata"]["managedFields"].as_array_mut().unwrap().push(entry);
        drifted_fields(&deployment(), &l)
    };
    assert!(
        scaled_by("kube-controller-manager", Some("scale")).is_empty(),
        "HPA"
    );
    assert!(
        scaled_by("keda-operator", Some("scale")).is_empty(),
        "another autoscaler"
    );
    assert_eq!(
        scaled_by("kubectl", Some("scale")),
        ["spec.replicas"],
        "kubectl scale"
    );
    assert_eq!(scaled_by("kubectl-edit", None), ["spec.replicas"], "kubectl edit");
    assert_eq!(scaled_by("k9s", None), ["spec.replicas"], "any other tool");
    // No record of who wrote it: reported.
    let mut unknown = live.clone();
    unknown["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    assert_eq!(drifted_fields(&deployment(), &unknown), ["spec.replicas"]);
}

#[test]
fn an_image_taken_by_kubectl_set_is_drift() {
    let mut live = served();
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("wordpress:hotfix");
    live["metadata"]["managedFields"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "manager": "kubectl-set", "operation": "Update",
            "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"wordpress\"}": {"f:image": {}}}}}}}
        }));
    assert_eq!(
        drifted_fields(&deployment(), &live),
        [r#"spec.template.spec.containers[name="wordpress"].image"#]
    );
}

#[test]
fn lists_without_keys_compare_as_a_whole() {
    let rendered = json!({"spec": {"args": ["--a", "--b"]}});
    assert!(drifted_fields(&rendered, &json!({"spec": {"args": ["--a", "--b"]}})).is_empty());
    assert_eq!(
        drifted_fields(&rendered, &json!({"spec": {"args": ["--a"]}})),
        ["spec.args"]
    );
    assert_eq!(
        drifted_fields(&rendered, &json!({"spec": {"args": ["--a", "--c"]}})),
        ["spec.args[1]"]
    );
}

#[test]
fn quantities_compare_by_value_only_where_they_are_quantities() {
    let rendered = json!({"spec": {"resources": {"requests": {"storage": "1024Mi", "cpu": 0.5}},
        "env": [{"name": "VERSION", "value": "1.10"}]}});
    let live = json!({"spec": {"resources": {"requests": {"storage": "1Gi", "cpu": "500m"}},
        "env": [{"name": "VERSION", "value": "1.1"}]}});
    assert_eq!(
        drifted_fields(&rendered, &live),
        [r#"spec.env[name="VERSION"].value"#]
    );
}

#[test]
fn yaml_1_1_scalars_compare_as_helm_reads_them() {
    // serde reads YAML 1.2, where `0440` and `yes` are text; Helm reads YAML 1.1, where they
    // are the octal number 288 and true, and the API server keeps what Helm sent.
    let rendered = json!({"spec": {"defaultMode": "0440", "hex": "0x1F", "enabled": "yes", "off": "off"}});
    let live = json!({"spec": {"defaultMode": 288, "hex": 31, "enabled": true, "off": false}});
    assert!(drifted_fields(&rendered, &live).is_empty());
    let changed = json!({"spec": {"defaultMode": 420, "hex": 31, "enabled": false, "off": false}});
    assert_eq!(
        drifted_fields(&rendered, &changed),
        ["spec.defaultMode", "spec.enabled"]
    );
}

#[test]
fn quantity_values() {
    let q = |s| quantity_nanos(s);
    assert_eq!(q("500m"), Some(500_000_000));
    assert_eq!(q("1Gi"), q("1024Mi"));
    assert_eq!(q("1"), q("1000m"));
    assert_eq!(q("image:1"), None);
}

#[test]
fn a_claimed_exemption_shields_nothing_but_the_replica_count() {
    // A store team rewrites the image, then claims all of `spec` for an autoscaler's name, or
    // through the scale subresource: the image is still drift, only the count stays exempt.
    let mut live = served();
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("wordpress:tenant");
    live["spec"]["replicas"] = json!(3);
    let image = r#"spec.template.spec.containers[name="wordpress"].image"#;
    let claimed = |entry: Value| {
        let mut l = live.clone();
        l["metadata"]["managedFields"] = json!([entry]);
        drifted_fields(&deployment(), &l)
    };
    let whole_spec = json!({"f:spec": {".": {}}});
    let every_field = json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"wordpress\"}": {"f:image": {}}}}}}});
    for fields in [whole_spec, every_field] {
        let by_controller = claimed(
            json!({"manager": "kube-controller-manager", "operation": "Update",
            "fieldsV1": fields.clone()}),
        );
        assert_eq!(by_controller, [image], "claimed by kube-controller-manager");
        let by_scale = claimed(
            json!({"manager": "tenant", "operation": "Update", "subresource": "scale",
            "fieldsV1": fields}),
        );
        assert_eq!(by_scale, [image], "claimed through the scale subresource");
    }
}
