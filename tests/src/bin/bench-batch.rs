//! The worker path's cost per record, against its floor, measured in one run.
//!
//! `cargo run --release -p symphony-tests --bin bench-batch -- [records] [rounds]`
//!
//! One SQS event of `records` envelopes (~500 B each, 1 % failing: an address that is not
//! one) goes through each variant `rounds` times; each variant runs in its own child
//! process, so its peak RSS is its own. Variants:
//! - `floor`: decode each envelope once (borrowed, unknown fields refused) with its
//!   payload kept raw, decode the typed payload, check it, collect the failures: the
//!   least any worker honouring the contract must do;
//! - `processor`: `BatchProcessor` with no log subscriber;
//! - `processor-logs`: `BatchProcessor` with the functions' own JSON log set-up at its
//!   default level (INFO), writing to a counting sink (the log bytes are reported);
//! - `bytes`: raw event bytes → response bytes (parse the Lambda event, process with
//!   logs, serialise the response), as the runtime hands them over.
//!
//! `--peer 'name=command {event} {rounds}'` (repeatable) runs another implementation over
//! the same event file, in the same run: it prints `records/s peak-RSS-KiB log-bytes
//! failures records` (see `bench/peers/`). `scripts/bench.sh` passes the peers.
//!
//! It prints one table: records per second (median of the rounds), the time against the
//! floor's, peak RSS, and log bytes per 1,000 records.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use std::time::Instant;
use symphony_tests::drain::first_delivery;
use symphony_tests::logs::LogBytes;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::Deserialize;
use symphony_core::{
    BatchProcessor, Envelope, HandlerContext, HandlerError, HandlerRegistry, Route, TypedHandler,
};
use symphony_jobs::email::EmailMessage;

const VARIANTS: [&str; 4] = ["floor", "processor", "processor-logs", "bytes"];

/// The handler's own work, the same in every variant: the address must be one.
fn check(email: &EmailMessage) -> Result<(), String> {
    if email.to_email.contains('@') {
        Ok(())
    } else {
        Err(format!("toEmail {:?} is not an address", email.to_email))
    }
}

struct Check;

#[async_trait]
impl TypedHandler<EmailMessage> for Check {
    async fn handle(
        &self,
        email: EmailMessage,
        _: &Envelope,
        _: &HandlerContext,
    ) -> Result<(), HandlerError> {
        check(&email).map_err(HandlerError::permanent)
    }
}

fn event_json(records: usize) -> String {
    let mut event = SqsEvent::default();
    event.records = (0..records)
        .map(|n| {
            let email = EmailMessage {
                email_id: format!("email-{n:06}"),
                user_id: "user-1".into(),
                mailbox_id: "mailbox-1".into(),
                to_email: if n % 100 == 99 {
                    format!("lead-{n}.example.com")
                } else {
                    format!("lead-{n}@example.com")
                },
                subject: "Your weekly summary".into(),
                html: "<p>".to_owned() + &"Hello there, here is the news. ".repeat(6) + "</p>",
                from_name: Some("Ada from Acme".into()),
                from_email: Some("ada@acme.example".into()),
            };
            let body = Envelope::wrap(&email, "process-email-queue", Some(email.email_id.clone()))
                .map(|e| e.to_body())
                .ok();
            let mut record = first_delivery(format!("m-{n:06}"), body);
            record.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:bench-email".into());
            record
        })
        .collect();
    serde_json::to_string(&event).unwrap_or_default()
}

/// The floor: one decode of each envelope, its payload kept raw, then the typed payload.
fn floor(event: &SqsEvent) -> SqsBatchResponse {
    // The whole envelope, once, borrowed where it can be: what any worker honouring the
    // contract reads (unknown fields refused, the payload left raw for its type).
    // Strings borrowed when they can be, owned when they carry escapes.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Bare<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
        #[serde(rename = "type", borrow)]
        message_type: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        payload: &'a serde_json::value::RawValue,
        #[serde(borrow)]
        meta: BareMeta<'a>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct BareMeta<'a> {
        #[serde(borrow)]
        correlation_id: std::borrow::Cow<'a, str>,
        created_at: chrono::DateTime<chrono::Utc>,
        #[serde(borrow)]
        source: std::borrow::Cow<'a, str>,
        #[serde(default)]
        attempt: u32,
        #[serde(default)]
        due_at: Option<chrono::DateTime<chrono::Utc>>,
    }
    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        // The delivery attempt, as the processor reads it.
        let attempt: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        std::hint::black_box(attempt);
        let ok = record
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<Bare>(body).ok())
            .filter(|bare| bare.message_type == "EmailMessage")
            .and_then(|bare| serde_json::from_str::<EmailMessage>(bare.payload.get()).ok())
            .is_some_and(|email| check(&email).is_ok());
        if !ok {
            let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// The functions' log set-up, counting bytes; installed by the variants that log.
static LOG_BYTES: OnceLock<LogBytes> = OnceLock::new();

fn peak_rss_kib() -> u64 {
    symphony_tests::peak_rss_kib(std::process::id())
}

/// What every variant is given: the event as text and parsed, and the processor.
struct Fixture {
    text: String,
    event: SqsEvent,
    processor: BatchProcessor,
    context: HandlerContext,
}

impl Fixture {
    fn new(records: usize) -> Self {
        let text = event_json(records);
        let event: SqsEvent = serde_json::from_str(&text).unwrap_or_default();
        let registry = HandlerRegistry::new()
            .register(Check)
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            text,
            event,
            processor: BatchProcessor::new(Arc::new(registry), 4),
            context: HandlerContext::new(Route::Symphony, "bench"),
        }
    }

    /// One round of `variant`: how many records it failed.
    async fn round(&self, variant: &str) -> usize {
        match variant {
            "floor" => floor(&self.event).batch_item_failures.len(),
            "bytes" => {
                let parsed: SqsEvent = serde_json::from_str(&self.text).unwrap_or_default();
                let response = self
                    .processor
                    .process(&parsed, &self.context)
                    .await
                    .response;
                let bytes = serde_json::to_vec(&response).unwrap_or_default();
                std::hint::black_box(&bytes);
                response.batch_item_failures.len()
            }
            _ => self
                .processor
                .process(&self.event, &self.context)
                .await
                .response
                .batch_item_failures
                .len(),
        }
    }
}

/// Runs one variant and prints `records_per_second rss_kib log_bytes failures`.
async fn run_variant(variant: &str, records: usize, rounds: usize) {
    let fixture = Fixture::new(records);
    if variant == "processor-logs" || variant == "bytes" {
        LOG_BYTES.get_or_init(|| LogBytes::install("info"));
    }
    let mut rates = Vec::with_capacity(rounds);
    let mut failures = 0;
    // Two rounds first, not counted: caches, allocator and branch predictors warm.
    for round in 0..rounds + 2 {
        let started = Instant::now();
        failures = fixture.round(variant).await;
        if round >= 2 {
            rates.push(records as f64 / started.elapsed().as_secs_f64());
        }
    }
    rates.sort_by(f64::total_cmp);
    let log_bytes = LOG_BYTES.get().map(LogBytes::bytes).unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} {} {} {} {}",
        rates[rates.len() / 2],
        peak_rss_kib(),
        log_bytes / (rounds as u64 + 2),
        failures,
        records
    );
}

/// Our variants timed in one process, round by round in turn, so that the machine's
/// drifts (this VM's speed varies by 2× between processes) fall on all of them alike.
/// Returns each variant's median records per second.
async fn interleaved(records: usize, rounds: usize) -> Vec<f64> {
    let fixture = Fixture::new(records);
    let logs = tracing::Dispatch::new(symphony_aws::telemetry::json_subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        LogBytes::default,
    ));
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); VARIANTS.len()];
    for round in 0..rounds + 2 {
        // Each round starts with another variant, so none is always first.
        for step in 0..VARIANTS.len() {
            let index = (round + step) % VARIANTS.len();
            let variant = &VARIANTS[index];
            // The functions' log set-up for the variants that have it, on this thread.
            let _logging = (index >= 2).then(|| tracing::dispatcher::set_default(&logs));
            let started = Instant::now();
            std::hint::black_box(fixture.round(variant).await);
            if round >= 2 {
                rates[index].push(records as f64 / started.elapsed().as_secs_f64());
            }
        }
    }
    rates
        .into_iter()
        .map(|mut rates| {
            rates.sort_by(f64::total_cmp);
            rates[rates.len() / 2]
        })
        .collect()
}

// One thread: a batch is processed within one task, as in the function; a second worker
// thread only adds scheduling noise to the measurement.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--variant") {
        let variant = args.get(1).cloned().unwrap_or_default();
        let records = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10_000);
        let rounds = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(25);
        run_variant(&variant, records, rounds).await;
        return;
    }
    let mut positional = Vec::new();
    let mut peers: Vec<(String, String)> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--peer" {
            let spec = rest.next().cloned().unwrap_or_default();
            let (name, command) = spec.split_once('=').unwrap_or(("peer", spec.as_str()));
            peers.push((name.to_owned(), command.to_owned()));
        } else {
            positional.push(arg.clone());
        }
    }
    let records: usize = positional
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let rounds: usize = positional.get(1).and_then(|n| n.parse().ok()).unwrap_or(25);
    let me = std::env::current_exe().unwrap_or_default();
    let event_file = std::env::temp_dir().join(format!("symphony-bench-event-{records}.json"));
    std::fs::write(&event_file, event_json(records)).unwrap_or_else(|e| panic!("{e}"));
    let mut runs: Vec<(String, std::process::Command)> = Vec::new();
    for variant in VARIANTS {
        let mut command = std::process::Command::new(&me);
        command.args([
            "--variant",
            variant,
            &records.to_string(),
            &rounds.to_string(),
        ]);
        runs.push((variant.to_owned(), command));
    }
    for (name, line) in &peers {
        let line = line
            .replace("{event}", &event_file.to_string_lossy())
            .replace("{rounds}", &rounds.to_string());
        let mut command = std::process::Command::new("sh");
        command.args(["-c", &line]);
        runs.push((name.clone(), command));
    }
    let mut results = Vec::new();
    for (variant, mut command) in runs {
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {variant}: {e}"));
        let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let fields: Vec<f64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if fields.len() != 5 {
            panic!(
                "{variant} printed {line:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        results.push((variant, fields));
    }
    let _ = std::fs::remove_file(&event_file);
    // Our rates come from the interleaved run; the children gave each variant's RSS and
    // log bytes. The peers' rates are their own processes'.
    for (result, rate) in results.iter_mut().zip(interleaved(records, rounds).await) {
        result.1[0] = rate;
    }
    let floor_rate = results[0].1[0];
    // The peers start from the event's JSON text, as `bytes` does: compare them with it.
    let bytes_rate = results[3].1[0];
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{records} records, ~{} B per body, 1 % failing; median of {rounds} rounds\n",
        event_json(1).len().saturating_sub(300)
    );
    let _ = writeln!(
        out,
        "| variant | records/s | time against the floor | time against `bytes` | peak RSS | log bytes per 1,000 records | failures |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    for (variant, fields) in &results {
        let _ = writeln!(
            out,
            "| {variant} | {:.3} M | {:.2}× | {:.2}× | {:.1} MiB | {:.0} | {} |",
            fields[0] / 1e6,
            floor_rate / fields[0],
            bytes_rate / fields[0],
            fields[1] / 1024.0,
            fields[2] * 1_000.0 / fields[4],
            fields[3]
        );
    }
}
