//! AWS requests per unit of a full run, by request type, on each path: per email, per
//! campaign lead (the campaign's tick and worker, then the email job's for the emails it
//! made) and per text.
//!
//! `cargo run -p symphony-tests --bin bench-calls -- [units]`
//!
//! Against moto (which counts every request it gets: `scripts/moto_server.py`), `units`
//! of each kind go through the legacy path (flags off), then as many through the
//! symphony path (flags on). Requests of the harness's event source (receiving and
//! deleting messages, as Lambda's poller does in AWS) are shown apart: they are not the
//! functions' own, though SQS bills them.

use std::io::Write;

use symphony_tests::calls::{Unit, event_source, requests_per_unit};
use symphony_tests::world::World;

#[tokio::main]
async fn main() {
    let units: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let world = World::start().await;
    for unit in [Unit::Email, Unit::CampaignLead, Unit::Text] {
        let runs = requests_per_unit(&world, unit, units).await;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "\n{units} units per path; requests per {}\n",
            unit.name()
        );
        let mut operations: Vec<&String> =
            runs.iter().flat_map(|run| run.per_unit.keys()).collect();
        operations.sort();
        operations.dedup();
        let _ = writeln!(out, "| request | legacy | symphony |");
        let _ = writeln!(out, "| --- | --- | --- |");
        for operation in operations {
            let label = if event_source(operation) {
                format!("{operation} (event source)")
            } else {
                operation.clone()
            };
            let _ = writeln!(
                out,
                "| {label} | {:.3} | {:.3} |",
                runs[0].of(operation),
                runs[1].of(operation)
            );
        }
        for run in &runs {
            let _ = writeln!(
                out,
                "\n{}: {:.2} requests per {} of the functions' own, over {} ticks",
                run.path,
                run.own(),
                unit.name(),
                run.ticks
            );
        }
    }
    let _ = writeln!(
        std::io::stdout().lock(),
        "\n{} mails delivered, {} texts sent in all",
        world.delivered_ids().len(),
        world.moto.recorded_sms().len()
    );
}
