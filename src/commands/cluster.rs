//! Commands that talk to a cluster: `plan` against live state, `apply`, `status`.
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use kube::Client;

use super::{EXIT_FAILED, EXIT_INVALID, EXIT_OK, print_diagnostics, print_plan, report_invalid, write_err};
use crate::apply::{Applier, Helm, Outcome, Policy, SyncReport};
use crate::config::{ClusterArgs, OutputFormat, SourceArgs};
use crate::error::{Error, Result};
use crate::live;
use crate::plan::{self, PlanOptions};
use crate::sync::{self, SyncOutcome};

/// How to reach the cluster and run helm.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub helm: PathBuf,
    pub charts_dir: PathBuf,
    pub helm_timeout: Duration,
    pub concurrency: usize,
    /// Longest wait for an answer of the API server.
    pub api_timeout: Duration,
    pub allow_prune_all: bool,
    pub allowed_chart_prefixes: Vec<String>,
    /// Namespace of storesync's own records; `None`: the kubeconfig's.
    pub namespace: Option<String>,
    /// The ClusterRole helm's identity is bound to in each store namespace.
    pub store_cluster_role: String,
    /// How long a pod may wait in a stuck state before its workload counts as Degraded.
    pub health_grace: Duration,
}

impl ClusterOptions {
    /// The options `args` give; the records' namespace defaults to `POD_NAMESPACE`.
    pub fn from_args(args: &ClusterArgs) -> ClusterOptions {
        ClusterOptions {
            helm: args.helm.clone(),
            charts_dir: args.charts_dir.clone(),
            helm_timeout: args.helm_timeout,
            concurrency: usize::from(args.concurrency),
            api_timeout: args.api_timeout,
            allow_prune_all: args.allow_prune_all,
            allowed_chart_prefixes: args.allowed_chart_prefixes.clone(),
            store_cluster_role: args.store_cluster_role.clone(),
            health_grace: args.health_grace,
            namespace: args
                .namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty())),
        }
    }
}

/// Longest wait for an answer of the API server by default: a server that hangs fails the sync,
/// which is retried, instead of holding it forever.
pub const API_TIMEOUT: Duration = Duration::from_secs(60);

/// A client for the cluster of `KUBECONFIG` or the in-cluster config, waiting at most `timeout`
/// for any answer.
pub async fn connect(timeout: Duration) -> Result<Client> {
    let mut config = kube::Config::infer().await.map_err(|e| Error::Connect {
        source: kube::Error::InferConfig(e),
    })?;
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    // kube-client would silently retry a 429, 503 or 504 up to 15 times with backoff up to 1000 s
    // (honouring Retry-After), holding a sync far past --api-timeout with nothing logged.
    // storesync retries itself, visibly: a transient answer fails the store or the sync, which
    // is retried with backoff (see the daemon's retries).
    config.default_retry = false;
    Client::try_from(config).map_err(|source| Error::Connect { source })
}

impl ClusterOptions {
    pub fn applier(&self, client: Client, dry_run: bool) -> Applier {
        let helm = Helm {
            binary: self.helm.clone(),
            charts_dir: self.charts_dir.clone(),
            timeout: self.helm_timeout,
            allowed_chart_prefixes: self.allowed_chart_prefixes.clone(),
        };
        Applier {
            concurrency: self.concurrency,
            dry_run,
            policy: Policy {
                allow_prune_all: self.allow_prune_all,
                namespace: self.namespace.clone(),
                store_cluster_role: Some(self.store_cluster_role.clone()),
            },
            health_grace: self.health_grace,
            ..Applier::new(client, helm)
        }
    }
}

/// `plan` against the live cluster.
#[allow(clippy::too_many_arguments)]
pub async fn plan_live(
    client: Client,
    args: &SourceArgs,
    cluster: &ClusterOptions,
    output: OutputFormat,
    create_diffs: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let snapshot = super::read(args)?;
    let applier = cluster.applier(client, true);
    let options = PlanOptions {
        create_diffs,
        ..PlanOptions::default()
    };
    let (catalog, plan, _) = match sync::plan_against_cluster(&applier, &snapshot, options).await? {
        Ok(planned) => planned,
        Err(findings) => return report_invalid(output, &findings, "invalid catalog: no plan", out, err),
    };
    print_plan(&plan, &catalog.warnings, args, output, out, err)
}

fn render_report(report: &SyncReport) -> String {
    let mut text = String::new();
    for r in report.stores.iter().filter(|r| r.outcome != Outcome::Unchanged) {
        let outcome = r.outcome.as_str();
        text.push_str(&format!("{:<12} {}", outcome, r.store));
        if let Some(detail) = &r.detail {
            text.push_str(&format!(": {detail}"));
        }
        text.push('\n');
    }
    text.push_str(&format!("Result: {}.\n", report.description()));
    text
}

/// What one `apply` is asked to do besides the source and the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyRequest {
    /// Leave stores whose files are gone in place.
    pub no_prune: bool,
    /// Server-side dry run of every object write; no helm.
    pub dry_run: bool,
    pub output: OutputFormat,
}

impl Default for ApplyRequest {
    /// A real sync, pruning, with text output: what `storesync apply` does without flags.
    fn default() -> Self {
        ApplyRequest {
            no_prune: false,
            dry_run: false,
            output: OutputFormat::Text,
        }
    }
}

/// `apply`: one sync of the catalog into the cluster.
pub async fn apply(
    client: Client,
    args: &SourceArgs,
    cluster: &ClusterOptions,
    request: ApplyRequest,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let ApplyRequest {
        no_prune,
        dry_run,
        output,
    } = request;
    let snapshot = super::read(args)?;
    let applier = cluster.applier(client, dry_run);
    let options = PlanOptions {
        no_prune,
        ..PlanOptions::default()
    };
    match sync::sync(&applier, &snapshot, options).await? {
        SyncOutcome::Invalid(findings) => report_invalid(
            output,
            &findings,
            "invalid catalog: nothing applied, nothing pruned",
            out,
            err,
        ),
        SyncOutcome::Done(synced) => {
            let sync::Synced {
                catalog,
                plan,
                report,
                rollout,
                ..
            } = *synced;
            print_diagnostics(err, &catalog.warnings)?;
            let progress = rollout.as_ref().map(|r| &r.progress);
            let halted = matches!(progress, Some(crate::rollout::Progress::Halted(_)));
            let rollout_line = progress.and_then(crate::rollout::Progress::line);
            match output {
                OutputFormat::Json => {
                    let mut json = serde_json::json!({ "plan": plan, "result": report, "dryRun": dry_run });
                    if let Some(line) = &rollout_line {
                        json["rollout"] = serde_json::json!({ "state": if halted { "halted" } else { "progress" }, "line": line });
                    }
                    let text =
                        serde_json::to_string_pretty(&json).map_err(|source| Error::Output { source })?;
                    writeln!(out, "{text}").map_err(write_err)?;
                }
                OutputFormat::Text => {
                    out.write_all(plan::render_text(&plan, &args.display()).as_bytes())
                        .map_err(write_err)?;
                    writeln!(out).map_err(write_err)?;
                    if dry_run {
                        writeln!(
                            out,
                            "Dry run: object writes were checked by the API server; nothing was changed."
                        )
                        .map_err(write_err)?;
                    }
                    out.write_all(render_report(&report).as_bytes())
                        .map_err(write_err)?;
                    if let Some(line) = &rollout_line {
                        // A rollout goes on with each `apply` of the same commit (or the daemon).
                        writeln!(out, "\nRollout: {line}.").map_err(write_err)?;
                    }
                }
            }
            // A halted rollout is the commit's to fix, like a blocked plan.
            Ok(if report.failed() {
                EXIT_FAILED
            } else if plan.is_blocked() || halted {
                EXIT_INVALID
            } else {
                EXIT_OK
            })
        }
    }
}

/// `status`: the live stores and their sync state.
pub async fn status(
    client: Client,
    health_grace: Duration,
    namespace: Option<String>,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<u8> {
    let mut live = live::observe(&client).await?;
    // Health needs reads a viewer's identity may lack (Pods, Jobs, release storage as the store's
    // identity): without them the table still shows, health left unknown.
    if let Err(e) =
        crate::sync::judge_health(&client, &live::DriftCheck::default(), health_grace, &mut live).await
    {
        tracing::warn!(error = %e, "store health not judged");
    }
    let ready = live::readiness(&client).await?;
    // The same derivation as the daemon's store table.
    let rows: Vec<serde_json::Value> = crate::report::store_views(&live, None, None, &ready, None)
        .into_iter()
        .map(|v| {
            serde_json::json!({
                "store": v.name,
                "owner": v.owner,
                "engine": v.engine,
                "plan": v.plan,
                "commit": v.commit,
                "namespace": if v.state == crate::report::StoreState::Terminating { "terminating" } else { "present" },
                "release": v.release,
                "ready": v.ready.unwrap_or_else(|| "0/0".into()),
                "health": v.health,
                "healthReason": v.health_reason,
                "lastError": v.last_error,
                "retiredAt": v.retired_at,
                "purgeAt": v.purge_at,
            })
        })
        .collect();
    match output {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&rows).map_err(|source| Error::Output { source })?;
            writeln!(out, "{text}").map_err(write_err)?;
        }
        OutputFormat::Text => {
            let header = [
                "STORE",
                "OWNER",
                "ENGINE",
                "PLAN",
                "COMMIT",
                "RELEASE",
                "READY",
                "HEALTH",
                "LAST ERROR",
                "WHY NOT HEALTHY",
            ];
            let keys = [
                "store",
                "owner",
                "engine",
                "plan",
                "commit",
                "release",
                "ready",
                "health",
                "lastError",
                "healthReason",
            ];
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    keys.iter()
                        .map(|k| match &row[*k] {
                            serde_json::Value::String(s) if *k == "commit" => s.chars().take(12).collect(),
                            serde_json::Value::String(s) => s.clone(),
                            _ => "-".into(),
                        })
                        .collect()
                })
                .collect();
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    cells
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([header[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cols: &[String]| {
                cols.iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
            writeln!(out, "{}", line(&head).trim_end()).map_err(write_err)?;
            for row in &cells {
                writeln!(out, "{}", line(row).trim_end()).map_err(write_err)?;
            }
            if rows.is_empty() {
                writeln!(out, "(no stores managed by storesync in this cluster)").map_err(write_err)?;
            }
            if let Some(line) = rollout_line(&client, namespace.as_deref()).await {
                writeln!(out, "\n{line}").map_err(write_err)?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// Where a rollout stands, from its record (a viewer without the right to read it sees none).
async fn rollout_line(client: &Client, namespace: Option<&str>) -> Option<String> {
    let ns = namespace.map_or_else(|| client.default_namespace().to_string(), String::from);
    let record = match crate::rollout::read(client, &ns).await {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!(error = %e, "rollout record not read");
            return None;
        }
    };
    let short = |c: &str| match c {
        "" => "the work tree".to_string(),
        c => format!("commit {}", c.get(..12).unwrap_or(c)),
    };
    if let Some(run) = &record.run {
        return Some(format!(
            "Rollout of {}: wave {}/{} judged since {}, {} of {} stores updated.",
            short(&run.commit),
            run.wave + 1,
            run.waves.len(),
            crate::text::rfc3339(run.applied_at),
            run.updated(),
            run.total()
        ));
    }
    record.halt.map(|h| {
        format!(
            "Rollout of {} halted: {}; the spec it refused for {} stores is not applied until a commit changes them.",
            h.of_commit(),
            h.line(),
            record.refused.len()
        )
    })
}
