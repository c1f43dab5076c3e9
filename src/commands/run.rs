//! One parsed command line, run: the dispatch `main` calls, writing to the given streams.
use std::io::Write;

use super::{API_TIMEOUT, ClusterOptions, connect};
use crate::config::{Cli, Command};
use crate::error::Result;
use crate::shutdown;

/// Exit code of a run cut short by a second signal (128 + SIGINT, as shells report it).
pub const EXIT_ABORTED: u8 = 130;

/// Runs the command `cli` names; the exit code, or the error that stopped it.
pub async fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let code = match cli.command {
        Command::Validate {
            source,
            allowed_chart_prefixes,
            output,
        } => super::validate(&source, &allowed_chart_prefixes, output, out, err)?,
        Command::Plan {
            source,
            cluster,
            offline: true,
            output,
            diff,
        } => super::plan_offline(&source, &cluster.allowed_chart_prefixes, output, diff, out, err)?,
        Command::Plan {
            source,
            cluster,
            offline: false,
            output,
            diff,
        } => {
            let options = ClusterOptions::from_args(&cluster);
            let client = connect(options.api_timeout).await?;
            super::plan_live(client, &source, &options, output, diff, out, err).await?
        }
        Command::Apply {
            source,
            cluster,
            no_prune,
            dry_run,
            output,
        } => {
            let request = super::ApplyRequest {
                no_prune,
                dry_run,
                output,
            };
            let options = ClusterOptions::from_args(&cluster);
            super::apply(
                connect(options.api_timeout).await?,
                &source,
                &options,
                request,
                out,
                err,
            )
            .await?
        }
        Command::Serve {
            source,
            cluster,
            serve,
        } => {
            let (draining, aborted) = shutdown::on_signals();
            let options = ClusterOptions::from_args(&cluster);
            let serving = super::serve(&source, &options, &serve, draining);
            match shutdown::drain_or_abort(serving, aborted).await {
                Ok(code) => code?,
                Err(e) => {
                    writeln!(err, "storesync: {e}").map_err(super::write_err)?;
                    EXIT_ABORTED
                }
            }
        }
        Command::Status {
            output,
            health_grace,
            namespace,
        } => {
            let namespace =
                namespace.or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()));
            super::status(connect(API_TIMEOUT).await?, health_grace, namespace, output, out).await?
        }
        Command::History {
            store,
            source,
            output,
        } => super::history(&store, &source, output, out, err)?,
    };
    out.flush().map_err(super::write_err)?;
    Ok(code)
}
