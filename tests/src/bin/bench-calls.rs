//! AWS requests per email of a full run, by request type, on each path.
//!
//! `cargo run -p symphony-tests --bin bench-calls -- [emails]`
//!
//! Against moto (which counts every request it gets: `scripts/moto_server.py`), `emails`
//! queued emails go through the legacy path (one tick, flags off), then as many through
//! the symphony path (a tick, then the worker over the queue). Requests of the harness's
//! event source (receiving and deleting messages, as Lambda's poller does in AWS) are
//! shown apart: they are not the functions' own.

use std::collections::BTreeMap;
use std::io::Write;

use symphony_tests::world::{EmailJob, World};

async fn counts(world: &World, reset: bool) -> BTreeMap<String, u64> {
    let url = format!("{}/_symphony/requests", world.moto.endpoint);
    let client = reqwest_like(&url, reset).await;
    serde_json::from_str(&client).unwrap_or_default()
}

/// A GET (or DELETE) of the counts over a plain TCP connection: one small request, no
/// HTTP client dependency.
async fn reqwest_like(url: &str, reset: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| panic!("{host}: {e}"));
    let method = if reset { "DELETE" } else { "GET" };
    let request = format!("{method} /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap_or(());
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap_or(0);
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// The harness's stand-in for Lambda's event source, not the functions' own calls.
fn event_source(operation: &str) -> bool {
    matches!(
        operation,
        "SQS.ReceiveMessage" | "SQS.DeleteMessage" | "SQS.DeleteMessageBatch"
    )
}

#[tokio::main]
async fn main() {
    let emails: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let world = World::start().await;
    let mut out = std::io::stdout().lock();

    let mut runs = Vec::new();
    for (path, flag_on) in [("legacy", false), ("symphony", true)] {
        world.set_email_flag(flag_on).await;
        world.seed_emails(path, emails).await;
        // The functions are built before the counting starts: start-up is not per email.
        let tick = world.scheduled::<EmailJob>(&[]).await;
        let worker = world.worker::<EmailJob>(&[]).await;
        counts(&world, true).await;
        let mut ticks = 0;
        loop {
            let report = world.tick::<EmailJob>(&tick).await;
            ticks += 1;
            if report.due == 0 {
                break;
            }
        }
        world.drain::<EmailJob>(&worker).await;
        runs.push((path, ticks, counts(&world, false).await));
    }
    let sent = world.delivered_ids().len();
    let _ = writeln!(
        out,
        "{emails} emails per path ({sent} delivered in all); requests per email\n"
    );
    let mut operations: Vec<&String> = runs.iter().flat_map(|(_, _, c)| c.keys()).collect();
    operations.sort();
    operations.dedup();
    let _ = writeln!(out, "| request | legacy | symphony |");
    let _ = writeln!(out, "| --- | --- | --- |");
    for operation in operations {
        let per = |counts: &BTreeMap<String, u64>| {
            counts.get(operation).copied().unwrap_or(0) as f64 / emails as f64
        };
        let label = if event_source(operation) {
            format!("{operation} (event source)")
        } else {
            operation.clone()
        };
        let _ = writeln!(
            out,
            "| {label} | {:.3} | {:.3} |",
            per(&runs[0].2),
            per(&runs[1].2)
        );
    }
    for (path, ticks, counts) in &runs {
        let own: u64 = counts
            .iter()
            .filter(|(operation, _)| !event_source(operation))
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(
            out,
            "\n{path}: {:.2} requests per email of the functions' own, over {ticks} ticks",
            own as f64 / emails as f64
        );
    }
}
