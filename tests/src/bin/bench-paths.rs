//! Symphony against legacy: the same emails, to an SMTP server that waits 50 ms before
//! it acknowledges each mail, through the legacy path (inline in the ticks, as the old
//! cron route did) and through the symphony path (the ticks queue them; workers at the
//! template's batch size, `BATCH_CONCURRENCY` and maximum concurrency drain the queue).
//!
//! `cargo run --release -p symphony-tests --bin bench-paths -- [emails]`
//!
//! Both run against the same moto server, which answers one request at a time (as our
//! tests need); in AWS, DynamoDB and SQS serve the workers' calls in parallel.

use std::io::Write;
use std::time::{Duration, Instant};

use symphony_tests::SmtpServer;
use symphony_tests::world::{EmailJob, World};

#[tokio::main]
async fn main() {
    let emails: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    // Every recipient is acknowledged 50 ms after its data.
    let smtp = SmtpServer::start_unsure("@", Duration::from_millis(50), "");
    let world = World::start_with(smtp).await;
    let template = symphony_tests::stack::load_template();
    let parameter = |name: &str| {
        template["Parameters"][name]["Default"]
            .as_u64()
            .unwrap_or_else(|| panic!("template.yaml has no default for {name}"))
    };
    let invocations = parameter("EmailMaximumConcurrency") as usize;

    let mut timings = Vec::new();
    for (path, symphony) in [("legacy", false), ("symphony", true)] {
        world.set_email_flag(symphony).await;
        world.seed_emails(path, emails).await;
        let tick = world.scheduled::<EmailJob>(&[]).await;
        let worker = world.worker::<EmailJob>(&[]).await;
        let started = Instant::now();
        let mut ticks = 0;
        loop {
            ticks += 1;
            if world.tick::<EmailJob>(&tick).await.due == 0 {
                break;
            }
        }
        if symphony {
            // As many concurrent worker invocations as the event source allows.
            let drains = (0..invocations).map(|_| world.drain::<EmailJob>(&worker));
            futures::future::join_all(drains).await;
        }
        timings.push((path, started.elapsed(), ticks));
    }

    let delivered = world.delivered_ids();
    let mut unique = delivered.clone();
    unique.dedup();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{emails} emails per path, SMTP acknowledging 50 ms after each mail; {} delivered, {} twice\n",
        delivered.len(),
        delivered.len() - unique.len()
    );
    let _ = writeln!(out, "| path | time | ticks | emails/s |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for (path, elapsed, ticks) in &timings {
        let _ = writeln!(
            out,
            "| {path} | {:.1} s | {ticks} | {:.1} |",
            elapsed.as_secs_f64(),
            emails as f64 / elapsed.as_secs_f64()
        );
    }
    let _ = writeln!(
        out,
        "\nsymphony is {:.1}× faster (workers: {invocations} invocations at once)",
        timings[0].1.as_secs_f64() / timings[1].1.as_secs_f64()
    );
}
