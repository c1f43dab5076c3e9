use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use storesync::commands;
use storesync::config::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("storesync=info,warn"));
    // Colour codes only on a terminal: never in a file or a container's log.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    // Not locked: log lines from worker threads go to stderr while a command runs.
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = match cli.command {
        Command::Validate { source, output } => commands::validate(&source, output, &mut out, &mut err)?,
        Command::Plan {
            source,
            offline: true,
            output,
            diff,
            ..
        } => commands::plan_offline(&source, output, diff, &mut out, &mut err)?,
        Command::Plan {
            source,
            cluster,
            offline: false,
            output,
            diff,
        } => {
            let client = commands::connect().await?;
            commands::plan_live(
                client,
                &source,
                &cluster.options(),
                output,
                diff,
                &mut out,
                &mut err,
            )
            .await?
        }
        Command::Apply {
            source,
            cluster,
            no_prune,
            dry_run,
            output,
        } => {
            let client = commands::connect().await?;
            let options = cluster.options();
            commands::apply(
                client, &source, &options, no_prune, dry_run, output, &mut out, &mut err,
            )
            .await?
        }
        Command::Serve {
            source,
            cluster,
            serve,
        } => {
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!(
                    "signal received: finishing the sync in flight, then stopping (again to abort)"
                );
                let _ = stop.send(true);
                wait_for_signal().await;
                eprintln!("storesync: second signal: aborting");
                std::process::exit(130);
            });
            commands::serve(&source, &cluster.options(), &serve, shutdown).await?
        }
        Command::Status { output } => commands::status(commands::connect().await?, output, &mut out).await?,
        Command::History {
            store,
            source,
            output,
        } => commands::history(&store, &source, output, &mut out, &mut err)?,
    };
    out.flush()?;
    Ok(code)
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("storesync: cannot start the async runtime: {e}");
            return ExitCode::from(commands::EXIT_USAGE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("storesync: {e:#}");
            ExitCode::from(commands::EXIT_USAGE)
        }
    }
}
