//! `symphony-dlq`: see the library's documentation, or run it without arguments.

use symphony_core::config::ProcessEnv;
use symphony_dlq::{Command, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match Command::parse(&args, &ProcessEnv) {
        Ok(command) => {
            let sdk = symphony_aws::load_sdk_config().await;
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            run(&command, &sqs, &mut std::io::stdout().lock()).await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // An operator's tool: its errors go to the terminal, with their causes.
            eprintln!("symphony-dlq: {}", symphony_core::error::chain(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
