//! The fault-injection run: the real email functions against moto and a flaky SMTP server,
//! with every fault a production run can meet, and an account of every unit at the end.
//!
//! Faults: transient SMTP failures (451) on a share of sends, permanent ones (550) for a
//! share of recipients, malformed and unknown messages put straight on the queue, a worker
//! killed mid-batch, two overlapping ticks at every tick, and the flag flipped between
//! waves. Work is fed in waves (the per-tick cap) so moto's queues stay shallow.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lambda_runtime::{Context, LambdaEvent};
use symphony_core::Envelope;
use symphony_jobs::email::{EmailMessage, EmailStatus};

use crate::seed;
use crate::services::SmtpServer;
use crate::world::{MAILBOX_ID, World};

/// How big a run, and how hostile.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    pub units: usize,
    /// Units seeded per wave (and the tick's cap).
    pub wave: usize,
    /// Share of SMTP recipients deferred (451) at random, on every attempt.
    pub transient_share: f64,
    /// Every n-th unit goes to a recipient the server rejects for good (550).
    pub permanent_every: usize,
    /// Malformed and unknown messages put on the queue per wave (each).
    pub bad_messages_per_wave: usize,
}

impl FaultPlan {
    pub fn ci() -> Self {
        Self {
            units: 300,
            wave: 60,
            transient_share: 0.15,
            permanent_every: 20,
            bad_messages_per_wave: 2,
        }
    }
}

/// Every unit, accounted for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultReport {
    pub units: usize,
    /// Delivered exactly once.
    pub sent: usize,
    /// Not delivered, and in the dead-letter queue: with its error details when the worker
    /// put it there, or (redriven after `maxReceiveCount`) with its email's record saying why.
    pub dead_lettered: usize,
    /// Not delivered, and failed in the emails table with a reason (the legacy path).
    pub failed_with_reason: usize,
    /// Delivered more than once.
    pub duplicates: usize,
    /// None of the above: the count that must be zero.
    pub lost: usize,
    /// Injected malformed or unknown messages, and how many distinct ones reached the DLQ.
    pub bad_messages: usize,
    pub bad_messages_dead_lettered: usize,
    pub elapsed: Duration,
}

impl std::fmt::Display for FaultReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "units {}, sent {}, dead-lettered {}, failed with reason {}, duplicates {}, lost {}; \
             bad messages {} (dead-lettered {}); {:.1} s",
            self.units,
            self.sent,
            self.dead_lettered,
            self.failed_with_reason,
            self.duplicates,
            self.lost,
            self.bad_messages,
            self.bad_messages_dead_lettered,
            self.elapsed.as_secs_f64()
        )
    }
}

pub async fn run(plan: FaultPlan) -> FaultReport {
    let started = Instant::now();
    let world = World::start_with(SmtpServer::start_flaky("^bounce", plan.transient_share)).await;
    let mut env = world.process_env();
    env.insert("EMAIL_TICK_LIMIT".into(), plan.wave.to_string());
    let ticks = [
        world.process_function_with(&env).await,
        world.process_function_with(&env).await,
    ];
    let worker = world.handle_function().await;
    let queue = world.stack.queue("EmailQueue").clone();

    let mut ids = Vec::with_capacity(plan.units);
    let mut bad_messages = 0;
    for (wave, first) in (0..plan.units).step_by(plan.wave.max(1)).enumerate() {
        // The flag flips between waves: rollouts and rollbacks in the middle of the run.
        world.set_email_flag(wave % 2 == 0).await;
        for n in first..(first + plan.wave).min(plan.units) {
            let id = format!("unit-{n:05}");
            let to = if plan.permanent_every > 0 && n % plan.permanent_every == 0 {
                format!("bounce-{n}@example.com")
            } else {
                format!("lead-{n}@example.com")
            };
            seed::put_email(
                &world.dynamo,
                world.emails_table(),
                &seed::queued_email(&id, MAILBOX_ID, &to),
            )
            .await;
            ids.push(id);
        }
        // Two overlapping ticks.
        tokio::join!(world.tick(&ticks[0]), world.tick(&ticks[1]));
        for n in 0..plan.bad_messages_per_wave {
            seed::send_body(
                &world.sqs,
                &queue.url,
                format!("{{\"id\": \"broken-{wave}-{n}"),
            )
            .await;
            let mut unknown = Envelope::wrap(
                &seed::queued_email("x", MAILBOX_ID, "x@example.com").message,
                "fault",
                None,
            )
            .expect("an envelope");
            unknown.message_type = "FaxMessage".into();
            seed::send_body(&world.sqs, &queue.url, unknown.to_body()).await;
            bad_messages += 2;
        }
        kill_a_worker_mid_batch(&world, &worker).await;
        world.drain(&worker).await;
    }

    // Let everything settle: legacy ticks retry what was released, the worker drains
    // what is queued, until nothing is due any more.
    world.set_email_flag(false).await;
    for _ in 0..40 {
        let (a, b) = tokio::join!(world.tick(&ticks[0]), world.tick(&ticks[1]));
        world.drain(&worker).await;
        if a.due + b.due == 0 {
            break;
        }
    }

    account(&world, &ids, bad_messages, started.elapsed()).await
}

/// Receives one batch, starts the worker on it and kills it part-way, as a Lambda timeout
/// or crash would; the messages come back when their visibility runs out (here, at once).
async fn kill_a_worker_mid_batch(world: &World, worker: &symphony_aws::SqsWorker) {
    let queue = world.stack.queue("EmailQueue");
    let event = crate::receive_event(&world.sqs, queue, 180).await;
    if event.records.is_empty() {
        return;
    }
    let handles: Vec<String> = event
        .records
        .iter()
        .filter_map(|r| r.receipt_handle.clone())
        .collect();
    let handling = worker.handle(LambdaEvent::new(event, Context::default()));
    // Killed after a few milliseconds: some records done, some mid-send, some not started.
    let _ = tokio::time::timeout(Duration::from_millis(15), handling).await;
    for handle in handles {
        // Already deleted or moved on by the worker's routes: nothing to put back.
        let _ = world
            .sqs
            .change_message_visibility()
            .queue_url(&queue.url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

async fn account(
    world: &World,
    ids: &[String],
    bad_messages: usize,
    elapsed: Duration,
) -> FaultReport {
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for id in world
        .smtp
        .received()
        .iter()
        .filter_map(|mail| mail.email_id())
    {
        *deliveries.entry(id).or_default() += 1;
    }
    let mut dead: HashMap<String, bool> = HashMap::new();
    // A bad message can reach the DLQ twice (a worker killed after dead-lettering it but
    // before its answer): count each one once.
    let mut bad_dead = std::collections::HashSet::new();
    let dlq = &world.stack.queue("EmailDeadLetterQueue").url;
    for letter in seed::all_dead_letters(&world.sqs, dlq).await {
        let email = Envelope::from_body(Some(&letter.body)).ok().and_then(|e| {
            (e.message_type == "EmailMessage")
                .then(|| e.decode::<EmailMessage>().ok())
                .flatten()
        });
        match email {
            Some(email) if email.email_id.starts_with("unit-") => {
                dead.insert(email.email_id, !letter.kind.is_empty());
            }
            _ => {
                let key = Envelope::from_body(Some(&letter.body))
                    .map(|e| e.id)
                    .unwrap_or(letter.body.clone());
                bad_dead.insert(key);
            }
        }
    }
    let mut report = FaultReport {
        units: ids.len(),
        bad_messages,
        bad_messages_dead_lettered: bad_dead.len(),
        elapsed,
        ..FaultReport::default()
    };
    for id in ids {
        match deliveries.get(id).copied().unwrap_or(0) {
            0 => {}
            1 => {
                report.sent += 1;
                continue;
            }
            _ => {
                report.duplicates += 1;
                continue;
            }
        }
        if dead.contains_key(id) {
            report.dead_lettered += 1;
            continue;
        }
        let record = seed::get_email(&world.dynamo, world.emails_table(), id).await;
        if record.status == EmailStatus::Failed && record.last_error.is_some() {
            report.failed_with_reason += 1;
        } else {
            report.lost += 1;
        }
    }
    report
}
