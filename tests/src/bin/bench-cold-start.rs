//! Cold start: each function from process start to its first `GET /next` on a local
//! Lambda Runtime API, its peak RSS then, and its first invocation, beside a hello-world
//! `lambda_runtime` binary, the same with the SQS and DynamoDB clients built at init, and
//! a Node.js function that creates the same clients. All in one run.
//!
//! `scripts/bench-cold-start.sh [runs]` builds every binary in release first. The functions
//! run with the environment `template.yaml` gives them, against a moto server provisioned
//! from the template; the first invocation gets the sample event (its units are not seeded:
//! it measures a first call's set-up and round trips, not a send).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use symphony_tests::project_root;
use symphony_tests::runtime_api::{self, Seen};
use symphony_tests::stack::FUNCTIONS;
use symphony_tests::world::World;

/// The event each function's first invocation gets.
const FUNCTION_SAMPLE_EVENTS: [(&str, &str); 7] = [
    (
        "process-email-queue",
        "example-eventbridge-email-queue.json",
    ),
    ("handle-email", "example-sqs-email.json"),
    ("process-campaigns", "example-eventbridge-campaigns.json"),
    ("handle-campaign", "example-sqs-campaign.json"),
    ("process-sms-drip", "example-eventbridge-sms-drip.json"),
    ("handle-sms", "example-sqs-sms.json"),
    ("symphony-api", "example-function-url-health.json"),
];

/// One start: (ms to the first GET /next, peak RSS KiB then, ms of the first invocation).
async fn start_once(
    program: &[String],
    env: &HashMap<String, String>,
    event: &str,
) -> Result<(f64, u64, f64), String> {
    let mut running = runtime_api::start(
        program,
        env,
        (event, Duration::from_secs(60)),
        std::process::Stdio::null,
    )
    .await?;
    let started = running.started;
    let wait = Duration::from_secs(30);
    let (mut first_next, mut rss, mut answered) = (None, 0, None);
    while answered.is_none() {
        match running.next_seen(wait).await {
            Some(Seen::Next(at, kib)) if first_next.is_none() => {
                rss = kib;
                first_next = Some(at);
            }
            Some(Seen::Next(..)) => {}
            Some(Seen::Answered(at, _)) => answered = Some(at),
            Some(Seen::Failed(why)) => {
                running.stop().await;
                return Err(why);
            }
            None => {
                running.stop().await;
                return Err("no answer".to_owned());
            }
        }
    }
    running.stop().await;
    let first_next = first_next.ok_or("no GET /next")?;
    let answered = answered.ok_or("no answer")?;
    Ok((
        (first_next - started).as_secs_f64() * 1_000.0,
        rss,
        (answered - first_next).as_secs_f64() * 1_000.0,
    ))
}

/// What is started: its name, its command line, its environment and its first event.
type Subject = (String, Vec<String>, HashMap<String, String>, String);

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(9);
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| project_root().join("target"))
        .join("release");
    let world = World::start().await;
    let path = std::env::var("PATH").unwrap_or_default();
    let events = project_root().join("events");
    let read = |name: &str| std::fs::read_to_string(events.join(name)).unwrap_or_default();
    let aws = |env: HashMap<String, String>| {
        let mut all = runtime_api::lambda_env(&world.moto.endpoint, "bench");
        all.insert("PATH".to_owned(), path.clone());
        all.extend(env);
        all
    };
    let bin = |name: &str| vec![target.join(name).to_string_lossy().into_owned()];
    let no_env = HashMap::new;
    let mut subjects: Vec<Subject> = vec![
        (
            "hello-world".into(),
            bin("hello-lambda"),
            aws(no_env()),
            "{}".into(),
        ),
        (
            "hello-world + SQS, DynamoDB clients".into(),
            bin("hello-lambda-clients"),
            aws(no_env()),
            "{}".into(),
        ),
        (
            "Node.js 20 + SQS, DynamoDB clients".into(),
            vec![
                "node".into(),
                project_root()
                    .join("bench/peers/node-cold-start.mjs")
                    .to_string_lossy()
                    .into_owned(),
            ],
            aws(no_env()),
            "{}".into(),
        ),
    ];
    for (function, logical_id) in FUNCTIONS {
        let event = FUNCTION_SAMPLE_EVENTS
            .iter()
            .find(|(name, _)| *name == function)
            .map(|(_, event)| *event)
            .unwrap_or_else(|| panic!("no sample event for {function}"));
        subjects.push((
            function.into(),
            bin(function),
            aws(world.function_env(logical_id, &[])),
            read(event),
        ));
    }
    let mut rows = Vec::new();
    for (name, program, env, event) in &subjects {
        let (mut init, mut rss, mut first) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            match start_once(program, env, event).await {
                Ok((ms, kib, invocation)) => {
                    init.push(ms);
                    rss.push(kib as f64 / 1_024.0);
                    first.push(invocation);
                }
                Err(why) => panic!("{name}: {why}"),
            }
        }
        rows.push((
            name.clone(),
            median(&mut init),
            median(&mut rss),
            median(&mut first),
        ));
    }
    let with_clients = rows[1].1;
    let node = rows[2].1;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "median of {runs} starts each, release builds\n");
    let _ = writeln!(
        out,
        "| process | start to first GET /next | × hello-world + clients | Node ÷ it | peak RSS then | first invocation |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for (name, init, rss, first) in &rows {
        let _ = writeln!(
            out,
            "| {name} | {init:.1} ms | {:.2}× | {:.1}× | {rss:.1} MiB | {first:.1} ms |",
            init / with_clients,
            node / init
        );
    }
}
