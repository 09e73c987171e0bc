//! The `pgcdc` binary: parses flags, loads the configuration, dispatches to a command.
//! All the work happens in the `pgcdc` library and the crates below it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pgcdc::cli::{Cli, LogFormat};
use pgcdc::{commands, config};

fn init_logging(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "pgcdc=info,pgcdc_source=info,pgcdc_sink=info,warn",
        1 => "pgcdc=debug,pgcdc_source=debug,pgcdc_sink=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colors only on a terminal: logs redirected to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let opts = config::LoadOptions {
        path: cli.config.clone(),
        sets: cli.sets.clone(),
        dir,
    };
    let cfg = match config::Config::load(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::dispatch(&cfg, cli.command));
    match result {
        Ok(code) => code,
        Err(e) => {
            let secrets = cfg.secrets();
            eprintln!("error: {}", config::redact(&report(&e), &secrets));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, leaving out a cause whose text the line already
/// holds (libraries such as object_store repeat their source in their own message).
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
