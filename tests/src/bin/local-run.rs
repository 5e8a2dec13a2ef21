//! README command one: the email queue, end to end, on this machine.
//!
//! Starts a moto server and an SMTP server on loopback, creates what `template.yaml`
//! declares, seeds a mailbox and queued emails, runs `process-email-queue` with the flag
//! on, drains the queue through `handle-email`, then rolls back (flag off) and shows the
//! next tick going legacy. Everything it starts is stopped when it ends.

#![allow(clippy::print_stdout)] // printing what happened is this program's job

use symphony_core::TickReport;
use symphony_jobs::email::{EMAIL_FLAG, EmailStatus};
use symphony_tests::seed;
use symphony_tests::world::World;

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    println!("Symphony local run: the email queue\n");
    let world =
        World::start_keeping_mail(&symphony_tests::project_root().join(".local/local-run")).await;
    println!(
        "  moto server   {} (pid {})",
        world.moto.endpoint,
        world.moto.pid()
    );
    println!(
        "  SMTP server   127.0.0.1:{} (pid {}), mail recorded in {}",
        world.smtp.port,
        world.smtp.pid(),
        world.smtp.mail_dir.display()
    );
    let mut tables: Vec<&String> = world.stack.tables.values().collect();
    tables.sort();
    let mut queues: Vec<&String> = world.stack.queues.keys().collect();
    queues.sort();
    println!("  from template.yaml: tables {tables:?}, queues {queues:?}\n");

    println!(
        "1. Flag {EMAIL_FLAG} on; five queued emails, one to a recipient the SMTP server rejects"
    );
    world.set_email_flag(true).await;
    let mut ids = world.seed_emails("email", 4).await;
    let rejected = seed::queued_email(
        "email-5",
        symphony_tests::world::MAILBOX_ID,
        "bounce@example.com",
    );
    seed::put_email(&world.dynamo, world.emails_table(), &rejected).await;
    ids.push(rejected.message.email_id.clone());

    let process = world.process_function().await;
    let report = world.tick(&process).await;
    println!("2. process-email-queue tick → {}", summary(&report));

    let worker = world.handle_function();
    let drained = world.drain(&worker).await;
    println!(
        "3. handle-email drained the queue in {} batches: {} handled, {} failed deliveries",
        drained.batches, drained.succeeded, drained.failed_deliveries
    );
    let dlq = &world.stack.queue("EmailDeadLetterQueue").url;
    let dead = seed::queue_depth(&world.sqs, dlq).await;
    println!(
        "   dead-lettered: {dead} (after maxReceiveCount receives; see the emails table for why)"
    );
    for id in &ids {
        let email = seed::get_email(&world.dynamo, world.emails_table(), id).await;
        let detail = match email.status {
            EmailStatus::Failed => {
                format!(" — {}", email.last_error.as_deref().unwrap_or_default())
            }
            _ => String::new(),
        };
        println!(
            "   {id:<10} {:<7} {:<9}{detail}",
            email.status.as_str(),
            route_of(&email)
        );
    }
    print_mail(&world, 0);

    println!("\n4. Rollback: flag {EMAIL_FLAG} off; three more queued emails");
    world.set_email_flag(false).await;
    world.seed_emails("later", 3).await;
    let before = world.smtp.received().len();
    let report = world.tick(&process).await;
    println!("5. process-email-queue tick → {}", summary(&report));
    println!(
        "   email queue depth now {}: the legacy path sent them inline",
        seed::queue_depth(&world.sqs, &world.stack.queue("EmailQueue").url).await
    );
    print_mail(&world, before);

    let delivered = world.delivered_ids();
    let mut unique = delivered.clone();
    unique.dedup();
    println!(
        "\nDone: {} emails reached the SMTP server, {dead} dead-lettered, {} sent twice.",
        delivered.len(),
        delivered.len() - unique.len()
    );
    println!(
        "Stopping moto (pid {}) and the SMTP server (pid {}).",
        world.moto.pid(),
        world.smtp.pid()
    );
}

fn summary(report: &TickReport) -> String {
    serde_json::json!({
        "due": report.due,
        "dispatched": report.dispatched,
        "legacy": report.legacy,
        "failed": report.failed,
        "skipped": report.skipped,
    })
    .to_string()
}

fn route_of(email: &symphony_jobs::email::EmailRecord) -> String {
    email
        .claimed_by
        .map(|route| format!("via {route}"))
        .unwrap_or_default()
}

fn print_mail(world: &World, skip: usize) {
    println!("   mail that reached the SMTP server:");
    for mail in world.smtp.received().iter().skip(skip) {
        println!(
            "     {:<10} → {}",
            mail.email_id().unwrap_or_default(),
            mail.rcpt_tos.join(", ")
        );
    }
}
