//! The fault-injection run at any size: `cargo run --release -p symphony-tests --bin
//! fault-suite -- 10000` (units, shared out between the email, campaign and SMS jobs; waves
//! of 100 per job). Prints the account of every unit and exits non-zero when the account
//! is not exact (see `FaultReport::violations`).

#![allow(clippy::print_stdout)] // a report is this program's output

use symphony_tests::faults::{FaultPlan, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let units = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000);
    let plan = FaultPlan {
        units,
        wave: 100,
        progress: true,
        ..FaultPlan::ci()
    };
    let report = Box::pin(run(plan)).await;
    print!("{report}");
    let violations = report.violations();
    for violation in &violations {
        println!("BROKEN: {violation}");
    }
    if violations.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
