//! `symphony` run as a process, as an operator runs it, against moto and the loopback
//! SMTP server (the real functions do the work in between).

use std::time::Duration;

use serde_json::Value;
use symphony_jobs::email::{EMAIL_FLAG, EmailStatus};
use symphony_tests::world::{CampaignJob, EmailJob, SmsJob, World};
use symphony_tests::{SmtpServer, seed};

/// What a run printed and how it ended.
#[derive(Debug)]
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// `symphony <args>` with the test stack, against the world's moto server.
async fn symphony(world: &World, args: &[&str]) -> Run {
    symphony_in(
        world,
        args,
        &[("SYMPHONY_STACK", world.stack.name.as_str())],
    )
    .await
}

async fn symphony_in(world: &World, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_symphony"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("USER", "operator-ann")
        .env("AWS_ENDPOINT_URL", &world.moto.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("symphony runs");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn succeeded(run: Run) -> Run {
    assert!(run.ok, "symphony failed:\n{}\n{}", run.stdout, run.stderr);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_change_is_seen_by_the_next_tick_and_lands_in_the_history() {
    // Given emails due, and no flag set (every tick is legacy)
    let world = World::start().await;
    world.seed_emails("first", 2).await;
    let tick = world.scheduled::<EmailJob>(&[]).await;
    assert_eq!(world.tick::<EmailJob>(&tick).await.legacy, 2);

    // When the operator turns on the global switch and the email job
    succeeded(symphony(&world, &["flags", "enable", "--global", "--why", "phase 1"]).await);
    let enabled =
        succeeded(symphony(&world, &["flags", "enable", "email", "--why", "phase 2"]).await);
    assert!(
        enabled
            .stdout
            .contains("SYMPHONY_EMAIL_QUEUE_ENABLED: absent -> on 100%"),
        "{}",
        enabled.stdout
    );

    // Then the next tick queues them
    world.seed_emails("second", 3).await;
    let report = world.tick::<EmailJob>(&tick).await;
    assert_eq!((report.dispatched, report.legacy), (3, 0), "{report:?}");

    // and the flags and their history say who did what, when and why
    let flags = succeeded(symphony(&world, &["--json", "flags"]).await).json();
    let email = flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == EMAIL_FLAG)
        .unwrap();
    assert_eq!(
        (email["enabled"].as_bool(), email["rolloutPercent"].as_u64()),
        (Some(true), Some(100))
    );
    let history =
        succeeded(symphony(&world, &["--json", "flags", "history", "email"]).await).json();
    let changes = history["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "only the email flag's: {history:#}");
    assert_eq!(changes[0]["from"], "absent");
    assert_eq!(changes[0]["to"], "on 100%");
    assert_eq!(changes[0]["why"], "phase 2");
    assert!(
        changes[0]["who"].as_str().unwrap().contains("operator-ann"),
        "{history:#}"
    );
    let all = succeeded(symphony(&world, &["flags", "history"]).await);
    assert_eq!(all.stdout.lines().count(), 2, "{}", all.stdout);

    // A rollout change keeps the flag on and halves the share
    succeeded(symphony(&world, &["flags", "rollout", "email", "50"]).await);
    let status = succeeded(symphony(&world, &["--json", "status"]).await).json();
    let row = &status["jobs"][0];
    assert_eq!(
        (row["job"].as_str(), row["symphonyShare"].as_u64()),
        (Some("email"), Some(50))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_all_sends_the_next_ticks_legacy_and_says_what_is_left_to_drain() {
    // Given every job on symphony, and emails queued but not yet handled
    let world = World::start().await;
    succeeded(symphony(&world, &["flags", "enable", "--all", "--why", "phase 4"]).await);
    world.seed_emails("queued", 2).await;
    let tick = world.scheduled::<EmailJob>(&[]).await;
    assert_eq!(world.tick::<EmailJob>(&tick).await.dispatched, 2);

    // When the operator rolls everything back
    let rollback = succeeded(symphony(&world, &["rollback", "--all"]).await);

    // Then it says what the next tick does and what is still queued
    assert!(
        rollback
            .stdout
            .contains("SYMPHONY_ENABLED: on 100% -> off 100%"),
        "{}",
        rollback.stdout
    );
    assert!(
        rollback
            .stdout
            .contains("email: the next process-email-queue tick runs every due unit on the legacy path; 2 message(s) still queued"),
        "{}",
        rollback.stdout
    );
    // and the next ticks of every job run legacy
    world.seed_emails("after", 2).await;
    let report = world.tick::<EmailJob>(&tick).await;
    assert_eq!((report.dispatched, report.legacy), (0, 2), "{report:?}");
    for flags in [
        world
            .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
            .await
            .flags,
        world
            .tick::<CampaignJob>(&world.scheduled::<CampaignJob>(&[]).await)
            .await
            .flags,
    ] {
        assert!(!flags.global.enabled, "{flags:?}");
    }
    // and what was queued still goes out, once
    let worker = world.worker::<EmailJob>(&[]).await;
    world.drain::<EmailJob>(&worker).await;
    assert_eq!(
        world.delivered_ids(),
        ["after-1", "after-2", "queued-1", "queued-2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_the_reasons_fixes_a_cause_and_retries_a_message() {
    // Given three emails: one rejected for good (550), one whose mailbox points at a port
    // where nothing listens (it fails on all five attempts the queue allows), one fine;
    // and a malformed body from the web app
    let world = World::start().await;
    let mailboxes = world.stack.table("MailboxesTable");
    let closed = symphony_tests::services::RefusingPort::bind();
    seed::put_loopback_mailbox(&world.dynamo, mailboxes, "mailbox-down", closed.port).await;
    world.set_flag(EMAIL_FLAG, true).await;
    for (id, mailbox, to) in [
        ("dl-rejected", "mailbox-1", "bounce-1@example.com"),
        ("dl-down", "mailbox-down", "lead-2@example.com"),
        ("dl-fine", "mailbox-1", "lead-3@example.com"),
    ] {
        world.queue_email(id, mailbox, to).await;
    }
    let queue = world.stack.queue("EmailQueue").url.clone();
    seed::send_body(&world.sqs, &queue, "{\"id\": \"broken").await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    let worker = world.worker::<EmailJob>(&[]).await;
    world.drain::<EmailJob>(&worker).await;
    assert_eq!(world.delivered_ids(), ["dl-fine"]);

    // and the worker indexed each dead letter as it wrote it
    let operations = symphony_aws::OperationsTable::new(
        world.dynamo.clone(),
        world.stack.table("OperationsTable"),
    );
    let mut indexed: Vec<(Option<String>, String)> = operations
        .dead_letters("symphony-local-email-dlq")
        .await
        .expect("the index reads")
        .into_iter()
        .map(|entry| (entry.unit_id, entry.kind))
        .collect();
    indexed.sort();
    assert_eq!(
        indexed,
        [
            (None, "malformed".to_owned()),
            (Some("dl-down".to_owned()), "exhausted".to_owned()),
            (Some("dl-rejected".to_owned()), "permanent".to_owned()),
        ]
    );

    // When the operator lists the email DLQ
    let listing = succeeded(symphony(&world, &["dlq", "list", "email"]).await).stdout;

    // Then each message is there with why, and no payload shows
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines[0], "3 messages in symphony-local-email-dlq",
        "{listing}"
    );
    let row = |unit: &str| -> Vec<String> {
        lines
            .iter()
            .find(|line| line.split('\t').nth(2) == Some(unit))
            .unwrap_or_else(|| panic!("no line for {unit}:\n{listing}"))
            .split('\t')
            .map(str::to_owned)
            .collect()
    };
    let rejected = row("dl-rejected");
    assert_eq!(
        &rejected[1..5],
        ["EmailMessage", "dl-rejected", "permanent", "1"]
    );
    assert!(rejected[6].contains("550"), "{listing}");
    let down = row("dl-down");
    assert_eq!(&down[3..5], ["exhausted", "5"], "{listing}");
    let malformed = row("-");
    assert_eq!(malformed[3], "malformed", "{listing}");
    assert!(!listing.contains("<p>Message"), "a body showed:\n{listing}");
    assert!(
        !listing.contains("lead-2@example.com"),
        "an address showed:\n{listing}"
    );

    // and one shows on its own, found by its id alone
    let shown = succeeded(symphony(&world, &["dlq", "show", &down[0]]).await).stdout;
    assert!(shown.contains("unit           dl-down"), "{shown}");
    assert!(shown.contains("retried        no"), "{shown}");

    // When the mailbox is fixed and that one message is retried
    seed::put_loopback_mailbox(&world.dynamo, mailboxes, "mailbox-down", world.smtp.port).await;
    let retried = succeeded(symphony(&world, &["dlq", "retry", &down[0]]).await);
    assert!(
        retried
            .stdout
            .contains("email: 1 moved back to symphony-local-email, 2 left"),
        "{}",
        retried.stdout
    );
    assert!(
        retried.stderr.contains("moved 1/1"),
        "progress: {}",
        retried.stderr
    );

    // Then the worker sends it, and its history says who retried it
    world.drain::<EmailJob>(&worker).await;
    assert_eq!(world.delivered_ids(), ["dl-down", "dl-fine"]);
    let shown = succeeded(symphony(&world, &["--json", "dlq", "show", &down[0]]).await).json();
    assert_eq!(shown["kind"], "exhausted");
    assert!(
        shown["retriedBy"]
            .as_str()
            .unwrap()
            .contains("operator-ann"),
        "{shown:#}"
    );

    // When the malformed one is removed
    let removed = succeeded(symphony(&world, &["dlq", "remove", &malformed[0]]).await);
    assert!(removed.stdout.contains("removed"), "{}", removed.stdout);

    // Then only the rejected one is left, in the queue and in the listing
    let dead = &world.stack.queue("EmailDeadLetterQueue").url;
    assert_eq!(seed::dead_letters(&world.sqs, dead).await.len(), 1);
    let listing = succeeded(symphony(&world, &["--json", "dlq", "list", "email"]).await).json();
    let left = listing["queues"][0]["messages"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{listing:#}");
    assert_eq!(left[0]["unitId"], "dl-rejected");

    // A bulk retry moves what is left, showing its progress; the 550 comes back
    let bulk = succeeded(symphony(&world, &["dlq", "retry", "--all", "--job", "email"]).await);
    assert!(
        bulk.stdout.contains("email: 1 moved back"),
        "{}",
        bulk.stdout
    );
    assert!(bulk.stderr.contains("moved 1/1"), "{}", bulk.stderr);
    world.drain::<EmailJob>(&worker).await;
    assert_eq!(seed::dead_letters(&world.sqs, dead).await.len(), 1);
    assert_eq!(world.delivered_ids(), ["dl-down", "dl-fine"]);

    // and an id that is nowhere is a clear error
    let missing = symphony(&world, &["dlq", "show", "no-such-id"]).await;
    assert!(!missing.ok);
    assert!(
        missing
            .stderr
            .contains("no dead-lettered message no-such-id"),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_email_is_listed_and_resolved_by_a_person() {
    // Given an email whose server acknowledged the data too late: held, unknown
    let world = World::start_with(SmtpServer::start_unsure(
        "late@",
        Duration::from_secs(4),
        "dropped@",
    ))
    .await;
    world.set_email_flag(true).await;
    world
        .queue_email("late", "mailbox-1", "late@example.com")
        .await;
    world
        .queue_email("dropped", "mailbox-1", "dropped@example.com")
        .await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    let worker = world
        .worker::<EmailJob>(&[
            ("SMTP_TIMEOUT_SECONDS", "1"),
            ("SMTP_REPLY_TIMEOUT_SECONDS", "2"),
        ])
        .await;
    world.drain::<EmailJob>(&worker).await;
    assert_eq!(world.email("late").await.status, EmailStatus::Unknown);

    // When the operator lists the held units
    let listing = succeeded(symphony(&world, &["--json", "unknown", "list"]).await).json();
    let held: Vec<&str> = listing["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|unit| unit["unitId"].as_str().unwrap())
        .collect();
    assert!(held.contains(&"late"), "{listing:#}");
    assert!(
        !listing.to_string().contains("late@example.com"),
        "an address showed"
    );

    // and, the server's log showing it went out, resolves it as sent
    let dead_letter_queue = world.stack.queue("EmailDeadLetterQueue").url.clone();
    let letters_of = |dead: &[seed::DeadLetter], id: &str| {
        dead.iter()
            .filter(|letter| letter.body.contains(&format!("\"emailId\":\"{id}\"")))
            .count()
    };
    let before = seed::dead_letters(&world.sqs, &dead_letter_queue).await;
    assert_eq!(letters_of(&before, "late"), 1, "{before:?}");
    let resolved = succeeded(
        symphony(
            &world,
            &["--json", "unknown", "resolve", "email", "late", "--sent"],
        )
        .await,
    )
    .json();
    assert_eq!(resolved["resolution"], "sent");
    assert_eq!(
        resolved["deadLettersRemoved"].as_array().map(Vec::len),
        Some(1)
    );

    // Then it is sent, its dead letter is gone, and no tick sends it again
    assert_eq!(world.email("late").await.status, EmailStatus::Sent);
    let dead = seed::dead_letters(&world.sqs, &dead_letter_queue).await;
    assert_eq!(letters_of(&dead, "late"), 0, "{dead:?}");
    let again = symphony(&world, &["unknown", "resolve", "email", "late", "--resend"]).await;
    assert!(!again.ok);
    assert!(
        again.stderr.contains("not held as an unknown outcome"),
        "{}",
        again.stderr
    );

    // A held one that did not go out (the connection dropped after the data) is made
    // ready again, due at once, and the next run sends it once (its mailbox now on a
    // server that answers)
    assert_eq!(world.email("dropped").await.status, EmailStatus::Unknown);
    succeeded(
        symphony(
            &world,
            &["unknown", "resolve", "email", "dropped", "--resend"],
        )
        .await,
    );
    assert_eq!(world.email("dropped").await.status, EmailStatus::Queued);
    let answering = SmtpServer::start("^bounce", "^busy");
    seed::put_loopback_mailbox(
        &world.dynamo,
        world.stack.table("MailboxesTable"),
        "mailbox-1",
        answering.port,
    )
    .await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    world.drain::<EmailJob>(&worker).await;
    assert_eq!(answering.delivered_ids(), ["dropped"]);
    assert_eq!(world.email("dropped").await.status, EmailStatus::Sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_finds_a_queue_without_redrive_and_says_what_it_skipped() {
    let world = World::start().await;
    world
        .sqs
        .set_queue_attributes()
        .queue_url(&world.stack.queue("SmsQueue").url)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy, "")
        .send()
        .await
        .unwrap();

    let doctor = symphony(&world, &["doctor"]).await;

    assert!(!doctor.ok, "problems found exit non-zero");
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.contains("redrive symphony-local-sms "))
        .unwrap_or_else(|| panic!("{}", doctor.stdout));
    assert!(line.starts_with("problem"), "{line}");
    assert!(line.contains("no redrive policy"), "{line}");
    let email = doctor
        .stdout
        .lines()
        .find(|l| l.contains("redrive symphony-local-email "))
        .unwrap();
    assert!(email.starts_with("ok"), "{email}");
    assert!(
        doctor.stdout.contains("skipped  schedule rules enabled"),
        "{}",
        doctor.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_is_a_clear_error_and_a_non_zero_exit() {
    let world = World::start().await;
    for (args, says) in [
        (vec!["flags", "enable", "fax"], "\"fax\" is not a job"),
        (
            vec!["unknown", "resolve", "email", "nope", "--sent"],
            "email nope does not exist",
        ),
        (
            vec!["unknown", "resolve", "campaign", "c-1", "--sent"],
            "keeps no ledger",
        ),
    ] {
        let run = symphony(&world, &args).await;
        assert!(!run.ok, "{args:?}");
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    let no_stack = symphony_in(&world, &["status"], &[]).await;
    assert!(!no_stack.ok);
    assert!(
        no_stack.stderr.contains("SYMPHONY_STACK"),
        "{}",
        no_stack.stderr
    );
    let missing = symphony_in(&world, &["flags"], &[("SYMPHONY_STACK", "nope")]).await;
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
    let usage = symphony(&world, &["flags", "rollout", "email", "101"]).await;
    assert!(!usage.ok);
    assert!(usage.stderr.contains("101"), "{}", usage.stderr);
    let help = symphony(&world, &["--help"]).await;
    assert!(
        help.ok && help.stdout.contains("symphony flags enable --all"),
        "{}",
        help.stdout
    );
}
