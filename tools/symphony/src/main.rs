//! `symphony`: run `symphony --help`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use symphony_cli::{Cli, Context, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let sdk = symphony_aws::load_sdk_config().await;
    let result = match Context::connect(cli.stack.clone(), &sdk).await {
        Ok(context) => run(&cli.command, &context).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(outcome) => {
            let mut out = std::io::stdout().lock();
            let written = if cli.json {
                writeln!(out, "{:#}", outcome.json)
            } else {
                write!(out, "{}", outcome.text).and_then(|()| {
                    if outcome.text.ends_with('\n') {
                        Ok(())
                    } else {
                        writeln!(out)
                    }
                })
            };
            if written.is_err() || outcome.problems {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            // An operator's tool: its errors go to the terminal, with their causes.
            eprintln!("symphony: {}", symphony_core::error::chain(&error));
            ExitCode::FAILURE
        }
    }
}
