//! README command one: the three jobs, end to end, on this machine.
//!
//! Starts a moto server and an SMTP server on loopback, creates what `template.yaml`
//! declares, and for each job (email queue, campaigns, SMS drip) seeds work, turns the
//! job's flag on, runs its scheduled function, drains its queue through its worker, then
//! rolls back (flag off) and shows the next tick going legacy. Everything it starts is
//! stopped when it ends.

#![allow(clippy::print_stdout)] // printing what happened is this program's job

use chrono::{Timelike, Utc};
use chrono_tz::Tz;
use symphony_adapters::sms::dynamo::{enrollment_to_item, sequence_to_item};
use symphony_core::TickReport;
use symphony_jobs::campaign::CAMPAIGN_FLAG;
use symphony_jobs::email::{EMAIL_FLAG, EmailStatus};
use symphony_jobs::sms::{EnrollmentStatus, SMS_FLAG};
use symphony_tests::seed;
use symphony_tests::world::{CampaignJob, EmailJob, SmsJob};
use symphony_tests::world::{MAILBOX_ID, World};

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    println!("Symphony local run: the email queue, campaigns and the SMS drip\n");
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
    println!(
        "  from template.yaml: {} tables, queues {queues:?}",
        tables.len()
    );

    let dead_emails = email_queue(&world).await;
    campaigns(&world).await;
    let dead_texts = sms_drip(&world).await;

    let delivered = world.delivered_ids();
    let mut unique = delivered.clone();
    unique.dedup();
    let texts = world.moto.recorded_sms();
    let mut unique_texts = texts.clone();
    unique_texts.sort();
    unique_texts.dedup();
    println!(
        "\nDone: {} emails reached the SMTP server ({} sent twice), {} texts reached SNS ({} sent twice), \
         {} messages dead-lettered.",
        delivered.len(),
        delivered.len() - unique.len(),
        texts.len(),
        texts.len() - unique_texts.len(),
        dead_emails + dead_texts
    );
    println!(
        "Stopping moto (pid {}) and the SMTP server (pid {}).",
        world.moto.pid(),
        world.smtp.pid()
    );
}

/// The email queue; returns how many messages it dead-lettered.
async fn email_queue(world: &World) -> usize {
    println!("\n== Email queue ==");
    println!(
        "1. Flag {EMAIL_FLAG} on; five queued emails, one to a recipient the SMTP server rejects"
    );
    world.set_email_flag(true).await;
    let mut ids = world.seed_emails("email", 4).await;
    let rejected = seed::queued_email("email-5", MAILBOX_ID, "bounce@example.com");
    seed::put_email(&world.dynamo, world.emails_table(), &rejected).await;
    ids.push(rejected.message.email_id.clone());

    let process = world.scheduled::<EmailJob>(&[]).await;
    let report = world.tick::<EmailJob>(&process).await;
    println!("2. process-email-queue tick → {}", summary(&report));

    let worker = world.worker::<EmailJob>(&[]).await;
    let drained = world.drain::<EmailJob>(&worker).await;
    println!(
        "3. handle-email drained the queue in {} batch(es): {} handled, {} failed deliveries",
        drained.batches, drained.succeeded, drained.failed_deliveries
    );
    let dead = seed::queue_depth(&world.sqs, &world.stack.queue("EmailDeadLetterQueue").url).await;
    println!(
        "   dead-lettered: {dead} (a permanent failure goes to the DLQ at once, with its reason)"
    );
    for id in &ids {
        let email = seed::get_email(&world.dynamo, world.emails_table(), id).await;
        let detail = match email.status {
            EmailStatus::Failed => {
                format!(" — {}", email.last_error.as_deref().unwrap_or_default())
            }
            _ => String::new(),
        };
        let route = email
            .claimed_by
            .map(|r| format!("via {r}"))
            .unwrap_or_default();
        println!(
            "   {id:<10} {:<7} {route:<13}{detail}",
            email.status.as_str()
        );
    }
    print_mail(world, 0);

    println!("4. Rollback: flag {EMAIL_FLAG} off; three more queued emails");
    world.set_email_flag(false).await;
    world.seed_emails("later", 3).await;
    let before = world.smtp.received().len();
    let report = world.tick::<EmailJob>(&process).await;
    println!("5. process-email-queue tick → {}", summary(&report));
    println!(
        "   email queue depth now {}: the legacy path sent them inline",
        seed::queue_depth(&world.sqs, &world.stack.queue("EmailQueue").url).await
    );
    print_mail(world, before);
    dead
}

async fn campaigns(world: &World) {
    println!("\n== Campaigns ==");
    println!(
        "1. Flag {CAMPAIGN_FLAG} on; campaign \"spring\" (2 steps) with three due leads, one of which \
         has no `company` for the template"
    );
    world.set_flag(CAMPAIGN_FLAG, true).await;
    world.set_email_flag(true).await;
    let campaigns = world.stack.table("CampaignsTable");
    let leads = world.stack.table("CampaignLeadsTable");
    seed::put_campaign(
        &world.dynamo,
        campaigns,
        &seed::campaign("spring", MAILBOX_ID, 2),
    )
    .await;
    for lead in ["ana", "ben"] {
        seed::put_lead(&world.dynamo, leads, &seed::lead("spring", lead)).await;
    }
    let mut no_company = seed::lead("spring", "cy");
    no_company.fields.clear();
    seed::put_lead(&world.dynamo, leads, &no_company).await;

    let process = world.scheduled::<CampaignJob>(&[]).await;
    let report = world.tick::<CampaignJob>(&process).await;
    println!("2. process-campaigns tick → {}", summary(&report));
    let before = world.smtp.received().len();
    let drained = world
        .drain::<CampaignJob>(&world.worker::<CampaignJob>(&[]).await)
        .await;
    println!(
        "3. handle-campaign drained the campaign queue: {} handled, {} failed",
        drained.succeeded, drained.failed_deliveries
    );
    for lead in ["ana", "ben", "cy"] {
        let lead = seed::get_lead(&world.dynamo, leads, "spring", lead).await;
        println!(
            "   lead {:<4} {:<7} next step {}",
            lead.lead_id,
            lead.status.as_str(),
            lead.current_step
        );
    }
    let emails = world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;
    println!(
        "4. handle-email drained the emails the campaign created: {} sent",
        emails.succeeded
    );
    print_mail(world, before);

    println!(
        "5. Rollback: flags {CAMPAIGN_FLAG} and {EMAIL_FLAG} off; campaign \"autumn\" with two due leads"
    );
    world.set_flag(CAMPAIGN_FLAG, false).await;
    world.set_email_flag(false).await;
    seed::put_campaign(
        &world.dynamo,
        campaigns,
        &seed::campaign("autumn", MAILBOX_ID, 1),
    )
    .await;
    for lead in ["dee", "eve"] {
        seed::put_lead(&world.dynamo, leads, &seed::lead("autumn", lead)).await;
    }
    let report = world.tick::<CampaignJob>(&process).await;
    println!("6. process-campaigns tick → {}", summary(&report));
    println!("   (\"spring\" is left out: the first tick's lease on it has not run out yet)");
    let before = world.smtp.received().len();
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    println!(
        "7. its emails follow the email flag (off): left queued, sent inline by the email tick → {}",
        summary(&report)
    );
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;
    print_mail(world, before);
    let autumn = seed::get_campaign(&world.dynamo, campaigns, "autumn").await;
    println!("   campaign autumn is now {}", autumn.status.as_str());
}

/// The SMS drip; returns how many messages it dead-lettered.
async fn sms_drip(world: &World) -> usize {
    println!("\n== SMS drip ==");
    let day = zone_where(|hour| (10..19).contains(&hour));
    let night = zone_where(|hour| !(7..22).contains(&hour));
    println!(
        "1. Flag {SMS_FLAG} on; sequence \"welcome\" (2 texts); four due enrollments: two in {day} \
         (daytime), one in {night} (quiet hours), one with an invalid number; one daytime \
         number has opted out"
    );
    world.set_flag(SMS_FLAG, true).await;
    let enrollments = world.stack.table("SmsEnrollmentsTable");
    seed::put_item(
        &world.dynamo,
        world.stack.table("SmsSequencesTable"),
        sequence_to_item(&seed::sequence("welcome", 2)),
    )
    .await;
    let plan = [
        ("kim", "+15550100", day),
        ("lee", "+15550199", day),
        ("max", "+15550123", night),
        ("ned", "555-0100", day),
    ];
    for (id, phone, zone) in plan {
        let mut enrollment = seed::enrollment(id, "welcome", phone);
        enrollment.time_zone = zone;
        seed::put_item(&world.dynamo, enrollments, enrollment_to_item(&enrollment)).await;
    }
    let opt_out = std::collections::HashMap::from([(
        "phone".to_owned(),
        aws_sdk_dynamodb::types::AttributeValue::S("+15550199".to_owned()),
    )]);
    seed::put_item(&world.dynamo, world.stack.table("SmsOptOutsTable"), opt_out).await;

    let process = world.scheduled::<SmsJob>(&[]).await;
    let report = world.tick::<SmsJob>(&process).await;
    println!("2. process-sms-drip tick → {}", summary(&report));
    let drained = world
        .drain::<SmsJob>(&world.worker::<SmsJob>(&[]).await)
        .await;
    println!(
        "3. handle-sms drained the SMS queue: {} handled, {} failed deliveries",
        drained.succeeded, drained.failed_deliveries
    );
    let dead = seed::queue_depth(&world.sqs, &world.stack.queue("SmsDeadLetterQueue").url).await;
    println!("   dead-lettered: {dead}");
    for (id, ..) in plan {
        let enrollment = seed::get_enrollment(&world.dynamo, enrollments, id).await;
        let note = match enrollment.status {
            EnrollmentStatus::Active if enrollment.current_step == 0 => "deferred past quiet hours",
            EnrollmentStatus::Active => "sent; next text due tomorrow",
            EnrollmentStatus::OptedOut => "skipped: the number opted out",
            EnrollmentStatus::Failed => "failed: invalid number (see lastError)",
            _ => "",
        };
        println!("   {id:<4} {:<9} {note}", enrollment.status.as_str());
    }
    print_texts(world, 0);

    println!("4. Rollback: flag {SMS_FLAG} off; one more due enrollment in {day}");
    world.set_flag(SMS_FLAG, false).await;
    let mut later = seed::enrollment("ola", "welcome", "+15550142");
    later.time_zone = day;
    seed::put_item(&world.dynamo, enrollments, enrollment_to_item(&later)).await;
    let before = world.moto.recorded_sms().len();
    let report = world.tick::<SmsJob>(&process).await;
    println!("5. process-sms-drip tick → {}", summary(&report));
    print_texts(world, before);
    dead
}

/// The first of a few well-known zones whose local hour satisfies `wanted`.
fn zone_where(wanted: impl Fn(u32) -> bool) -> Tz {
    let zones = [
        Tz::UTC,
        Tz::America__New_York,
        Tz::America__Los_Angeles,
        Tz::Europe__Paris,
        Tz::Asia__Tokyo,
        Tz::Australia__Sydney,
        Tz::Asia__Kolkata,
        Tz::Pacific__Auckland,
    ];
    let now = Utc::now();
    zones
        .into_iter()
        .find(|zone| wanted(now.with_timezone(zone).hour()))
        .unwrap_or(Tz::UTC)
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

fn print_mail(world: &World, skip: usize) {
    println!("   mail that reached the SMTP server:");
    for mail in world.smtp.received().iter().skip(skip) {
        println!(
            "     {:<12} → {}",
            mail.email_id().unwrap_or_default(),
            mail.rcpt_tos.join(", ")
        );
    }
}

fn print_texts(world: &World, skip: usize) {
    println!("   texts SNS accepted:");
    for (phone, body) in world.moto.recorded_sms().iter().skip(skip) {
        println!("     {phone:<13} \"{body}\"");
    }
}
