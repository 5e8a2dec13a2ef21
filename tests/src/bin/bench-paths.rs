//! Symphony against legacy: the same emails, to an SMTP server that waits 50 ms before
//! it acknowledges each mail, through the legacy path (inline in the ticks, as the old
//! cron route did) and through the symphony path (the ticks queue them; workers at the
//! template's batch size, `BATCH_CONCURRENCY` and maximum concurrency drain the queue).
//!
//! `cargo run --release -p symphony-tests --bin bench-paths -- [emails] [--moto]`
//!
//! By default the job's real tick, handler, batch processor and SMTP mailer run against
//! a real SMTP server, with the tables and the queue as the core's memory ports: what is
//! measured is the paths, as DynamoDB and SQS would serve them (in parallel, in a few
//! milliseconds). With `--moto`, the functions run as in the tests, against a moto server
//! that answers one request at a time, so that run measures moto more than the paths.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use symphony_adapters::email::smtp::SmtpMailer;
use symphony_core::flags::{FlagDefaults, GLOBAL_FLAG, MemoryFlagStore};
use symphony_core::transport::MemoryQueue;
use symphony_core::{
    BatchProcessor, Dispatcher, FlagReader, HandlerContext, HandlerRegistry, MemoryLedger, Route,
    SyncTransport, Tick,
};
use symphony_jobs::email::{
    EMAIL_FLAG, EmailRecord, EmailWork, Mailbox, SendEmailHandler, SmtpSecurity,
};
use symphony_jobs::memory::MemoryMailboxes;
use symphony_jobs::secrets::{Secret, SecretError, SecretRef, SecretResolver};
use symphony_tests::SmtpServer;
use symphony_tests::calls::requests_per_email;
use symphony_tests::cost::{self, Usage};
use symphony_tests::drain::first_delivery;
use symphony_tests::logs::LogBytes;
use symphony_tests::world::{EmailJob, World};

/// What the template deploys for the email job.
struct Settings {
    tick_limit: usize,
    batch_size: usize,
    batch_concurrency: usize,
    invocations: usize,
}

impl Settings {
    fn from_template() -> Self {
        let template = symphony_tests::stack::load_template();
        let parameter = |name: &str| {
            template["Parameters"][name]["Default"]
                .as_u64()
                .unwrap_or_else(|| panic!("template.yaml has no default for {name}"))
                as usize
        };
        Self {
            tick_limit: parameter("EmailTickLimit"),
            batch_size: parameter("EmailBatchSize"),
            batch_concurrency: parameter("EmailBatchConcurrency"),
            invocations: parameter("EmailMaximumConcurrency"),
        }
    }
}

/// The bench's mailbox has no password: no secret is ever asked for.
struct NoSecrets;

#[async_trait]
impl SecretResolver for NoSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        Err(SecretError::NotFound {
            reference: reference.clone(),
        })
    }
}

/// One path's world: its emails in a memory ledger, the real handler and SMTP mailer.
struct MemoryPath {
    tick: Tick<EmailWork>,
    queue: Arc<MemoryQueue>,
    registry: Arc<HandlerRegistry>,
}

fn memory_path(
    prefix: &str,
    emails: usize,
    smtp_port: u16,
    symphony: bool,
    settings: &Settings,
) -> MemoryPath {
    let records: Vec<EmailRecord> = (1..=emails)
        .map(|n| {
            let id = format!("{prefix}-{n}");
            symphony_tests::seed::queued_email(&id, "mailbox-1", &format!("{id}@example.com"))
        })
        .collect();
    let ledger = Arc::new(MemoryLedger::with(records));
    let mailboxes = Arc::new(MemoryMailboxes::of([Mailbox {
        mailbox_id: "mailbox-1".into(),
        user_id: "user-1".into(),
        smtp_host: "127.0.0.1".into(),
        smtp_port,
        smtp_security: SmtpSecurity::None,
        smtp_username: None,
        smtp_password: None,
        daily_limit: None,
        from_name: None,
        from_email: None,
    }]));
    let mailer = Arc::new(SmtpMailer::new(
        Arc::new(NoSecrets),
        Duration::from_secs(10),
    ));
    let registry = Arc::new(
        HandlerRegistry::new()
            .register(SendEmailHandler::new(ledger.clone(), mailboxes, mailer))
            .unwrap_or_else(|e| panic!("registry: {e}")),
    );
    let flags = Arc::new(MemoryFlagStore::default());
    flags.set(GLOBAL_FLAG, true, 100);
    flags.set(EMAIL_FLAG, symphony, 100);
    let queue = Arc::new(MemoryQueue::default());
    let tick = Tick::new(
        "process-email-queue",
        EmailWork::new(ledger, EMAIL_FLAG, Duration::from_secs(900)),
        FlagReader::new(flags, FlagDefaults::default()),
        Dispatcher::new(queue.clone()),
        Dispatcher::new(Arc::new(SyncTransport::new(registry.clone()))),
        settings.tick_limit,
    );
    MemoryPath {
        tick,
        queue,
        registry,
    }
}

/// What one path did and cost in the memory run.
#[derive(Debug, Default)]
struct PathRun {
    elapsed: Duration,
    ticks: usize,
    failed: usize,
    /// Lambda's billed time: every tick's and every worker invocation's duration.
    billed: Duration,
    invocations: usize,
    /// The functions' log lines at their default level, and their metric (EMF) lines.
    log_bytes: u64,
    /// The mean size of an email's envelope on the queue (symphony).
    envelope_bytes: f64,
}

/// The bytes of the EMF lines the functions write for these figures.
fn emf_bytes(figures: symphony_core::metrics::Recorder) -> u64 {
    figures
        .samples("email", chrono::Utc::now())
        .iter()
        .map(|sample| {
            symphony_core::metrics::emf_line(symphony_aws::telemetry::DEFAULT_NAMESPACE, sample)
                .len() as u64
                + 1
        })
        .sum()
}

/// Ticks until nothing is due, each tick one invocation.
async fn tick_until_done(tick: &Tick<EmailWork>, run: &mut PathRun) {
    loop {
        let started = Instant::now();
        let now = chrono::Utc::now().timestamp();
        let report = tick.run(now).await.unwrap_or_else(|e| panic!("tick: {e}"));
        run.billed += started.elapsed();
        run.ticks += 1;
        run.invocations += 1;
        let due = report.due;
        run.log_bytes += emf_bytes(report.figures);
        if due == 0 {
            return;
        }
    }
}

/// The queue's envelopes as SQS events of `batch_size` records, as Lambda's poller
/// hands them to the workers.
fn batches(path: &MemoryPath, batch_size: usize) -> Vec<SqsEvent> {
    path.queue
        .sent()
        .chunks(batch_size)
        .map(|chunk| {
            let mut event = SqsEvent::default();
            event.records = chunk
                .iter()
                .map(|envelope| first_delivery(envelope.id.clone(), Some(envelope.to_body())))
                .collect();
            event
        })
        .collect()
}

/// One path on memory ports: its time, and what Lambda would bill for it.
async fn run_in_memory(
    prefix: &str,
    emails: usize,
    smtp_port: u16,
    symphony: bool,
    settings: &Settings,
    logs: &LogBytes,
) -> PathRun {
    let path = memory_path(prefix, emails, smtp_port, symphony, settings);
    let logged_before = logs.bytes();
    let started = Instant::now();
    let mut run = PathRun::default();
    tick_until_done(&path.tick, &mut run).await;
    if symphony {
        // As many concurrent worker invocations as the event source allows, each taking
        // the next batch as it finishes one.
        let sent = path.queue.sent();
        run.envelope_bytes =
            sent.iter().map(|e| e.to_body().len() as f64).sum::<f64>() / sent.len().max(1) as f64;
        let pending = std::sync::Mutex::new(batches(&path, settings.batch_size));
        let processor = BatchProcessor::new(path.registry.clone(), settings.batch_concurrency);
        let worker = || async {
            let mut done = PathRun::default();
            loop {
                let next = pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop();
                let Some(event) = next else { return done };
                let context = HandlerContext::new(Route::Symphony, "bench");
                let invoked = Instant::now();
                let report = processor.process(&event, &context).await;
                done.billed += invoked.elapsed();
                done.invocations += 1;
                done.failed += report.failed();
                done.log_bytes += emf_bytes(report.figures(Route::Symphony));
            }
        };
        for done in futures::future::join_all((0..settings.invocations).map(|_| worker())).await {
            run.billed += done.billed;
            run.invocations += done.invocations;
            run.failed += done.failed;
            run.log_bytes += done.log_bytes;
        }
    }
    run.elapsed = started.elapsed();
    run.log_bytes += logs.bytes() - logged_before;
    run
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--moto") {
        let emails = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1_000);
        on_moto(emails).await;
        return;
    }
    let emails: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1_000);
    let settings = Settings::from_template();
    let logs = LogBytes::install("info");
    // Every recipient is acknowledged 50 ms after its data.
    let smtp = SmtpServer::start_unsure("@", Duration::from_millis(50), "");
    let mut runs = Vec::new();
    for (path, symphony) in [("legacy", false), ("symphony", true)] {
        let run = run_in_memory(path, emails, smtp.port, symphony, &settings, &logs).await;
        runs.push((path, run));
    }
    let delivered = smtp.delivered_ids();
    let mut unique = delivered.clone();
    unique.dedup();

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{emails} emails per path (the job's tick, handler, batch processor and SMTP mailer; tables and queue as memory ports), SMTP acknowledging 50 ms after each mail; {} delivered, {} twice\n",
        delivered.len(),
        delivered.len() - unique.len()
    );
    let _ = writeln!(
        out,
        "| path | time | emails/s | ticks | invocations | billed Lambda time per email | log bytes per 1,000 emails | failed in the workers |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (path, run) in &runs {
        let _ = writeln!(
            out,
            "| {path} | {:.1} s | {:.1} | {} | {} | {:.1} ms | {:.0} | {} |",
            run.elapsed.as_secs_f64(),
            emails as f64 / run.elapsed.as_secs_f64(),
            run.ticks,
            run.invocations,
            run.billed.as_secs_f64() * 1000.0 / emails as f64,
            run.log_bytes as f64 * 1000.0 / emails as f64,
            run.failed
        );
    }
    let _ = writeln!(
        out,
        "\nsymphony is {:.1}× faster (workers: {} invocations at once, batches of {}, {} records at once in each)\n",
        runs[0].1.elapsed.as_secs_f64() / runs[1].1.elapsed.as_secs_f64(),
        settings.invocations,
        settings.batch_size,
        settings.batch_concurrency
    );
    drop(out);

    // The requests per email, counted by moto over a smaller run of the real functions.
    let counted = 100;
    let world = World::start().await;
    let (requests, _) = requests_per_email(&world, counted).await;
    // The item is about the envelope's size: the same fields, with the lifecycle's.
    let measured = runs[1].1.envelope_bytes;
    let usages = |email_bytes: f64| -> Vec<Usage<'_>> {
        runs.iter()
            .zip(&requests)
            .map(|((path, run), requests)| Usage {
                path,
                billed_seconds: run.billed.as_secs_f64() / emails as f64,
                invocations: run.invocations as f64 / emails as f64,
                log_bytes: run.log_bytes as f64 / emails as f64,
                requests,
                email_bytes,
            })
            .collect()
    };
    let memory_mb = symphony_tests::stack::load_template()["Globals"]["Function"]["MemorySize"]
        .as_u64()
        .unwrap_or(0) as u32;
    let mut out = std::io::stdout().lock();
    for (label, email_bytes) in [
        ("the bench's emails", measured),
        ("emails with 10 KB more HTML", measured + 10_240.0),
    ] {
        let _ = writeln!(
            out,
            "\nThe bill per million emails at {memory_mb} MB, {label} ({email_bytes:.0} B; requests per email counted by moto over {counted} emails per path; prices and units in symphony_tests::cost):\n"
        );
        let _ = write!(
            out,
            "{}",
            cost::table(&usages(email_bytes), memory_mb, &cost::US_EAST_1)
        );
    }
}

/// The paths as the tests run them: the functions against moto, which answers one
/// request at a time, so this measures moto more than the paths.
async fn on_moto(emails: usize) {
    let settings = Settings::from_template();
    let smtp = SmtpServer::start_unsure("@", Duration::from_millis(50), "");
    let world = World::start_with(smtp).await;
    let mut timings = Vec::new();
    for (path, symphony) in [("legacy", false), ("symphony", true)] {
        world.set_email_flag(symphony).await;
        world.seed_emails(path, emails).await;
        let tick = world.scheduled::<EmailJob>(&[]).await;
        let worker = world.worker::<EmailJob>(&[]).await;
        let started = Instant::now();
        loop {
            if world.tick::<EmailJob>(&tick).await.due == 0 {
                break;
            }
        }
        if symphony {
            let drains = (0..settings.invocations).map(|_| world.drain::<EmailJob>(&worker));
            futures::future::join_all(drains).await;
        }
        timings.push((path, started.elapsed()));
    }
    let delivered = world.delivered_ids();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{emails} emails per path against moto; {} delivered",
        delivered.len()
    );
    for (path, elapsed) in &timings {
        let _ = writeln!(out, "{path}: {:.1} s", elapsed.as_secs_f64());
    }
    let _ = writeln!(
        out,
        "symphony is {:.1}× faster",
        timings[0].1.as_secs_f64() / timings[1].1.as_secs_f64()
    );
}
