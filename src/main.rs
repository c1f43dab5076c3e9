use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use storesync::commands;
use storesync::config::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("storesync=info,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
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
