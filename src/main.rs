//! The `edgeplane` binary: parse the command line, run it, map the outcome
//! to an exit code. Everything else is in `edgeplane::cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = edgeplane::cli::Cli::parse();
    edgeplane::cli::init_logging(cli.log_json);
    match edgeplane::cli::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let (code, message) = edgeplane::cli::exit_for(&e);
            if let Some(message) = message {
                eprintln!("error: {message}");
            }
            code
        }
    }
}
