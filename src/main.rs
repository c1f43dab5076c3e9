//! Wiring only: parse the command line, set up logging and the runtime, run, exit.
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use storesync::commands;
use storesync::config::{Cli, LogFormat};
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
    // Not locked: log lines from worker threads go to stderr while a command runs.
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match runtime.block_on(commands::run(cli, &mut out, &mut err)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The message already names its cause; printing the source chain would repeat it.
            eprintln!("storesync: {e}");
            ExitCode::from(commands::EXIT_USAGE)
        }
    }
}
