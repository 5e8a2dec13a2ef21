//! What the functions log at INFO: ids, counts and outcomes — never an address, a phone
//! number, a subject or a body; and at no level a secret. The whole run of every job is
//! captured, at every level, through the functions' own log set-up
//! (`symphony_aws::telemetry`), and checked.

use symphony_adapters::sms::dynamo::{enrollment_to_item, sequence_to_item};
use symphony_jobs::campaign::CAMPAIGN_FLAG;
use symphony_jobs::sms::SMS_FLAG;
use symphony_tests::logs::CapturedLogs;
use symphony_tests::seed;
use symphony_tests::world::{CampaignJob, EmailJob, SmsJob};
use symphony_tests::world::{MAILBOX_ID, NEVER_QUIET, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_logs_carry_no_addresses_numbers_subjects_or_bodies_and_no_log_a_secret() {
    // Given every log line at every level, in the functions' JSON format
    let captured = CapturedLogs::install("trace");

    // When each job runs, on both paths, with a failure or two
    let world = World::start().await;
    world.set_email_flag(true).await;
    world.seed_emails("private", 2).await;
    let rejected = seed::queued_email("private-3", MAILBOX_ID, "bounce@example.com");
    seed::put_email(&world.dynamo, world.emails_table(), &rejected).await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;
    world.set_email_flag(false).await;
    world.seed_emails("legacy", 1).await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;

    // and mailboxes that log in with passwords from Secrets Manager, one right (read at
    // start) and one wrong (read at first use, refused with 535)
    let (secure, ca) = symphony_tests::SmtpServer::start_requiring_login("symphony:R1ght-Pa55");
    let mut secrets = Vec::new();
    for (name, password) in [("right", "R1ght-Pa55"), ("wrong", "Wr0ng-Pa55")] {
        let mailbox = format!("mailbox-{name}");
        secrets.push(
            world
                .put_login_mailbox(&mailbox, secure.port, password)
                .await,
        );
        world
            .queue_email(
                &format!("login-{name}"),
                &format!("mailbox-{name}"),
                "lead@example.com",
            )
            .await;
    }
    let ca = ca.to_string_lossy().into_owned();
    // The right one is read at start
    let preload = format!("secretsmanager:{}", secrets[0]);
    let login_env = world.function_env(
        "ProcessEmailQueueFunction",
        &[("SMTP_CA_FILE", ca.as_str()), ("SMTP_SECRETS", &preload)],
    );
    world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&login_env).await)
        .await;
    assert_eq!(secure.delivered_ids(), ["login-right"]);

    world.set_flag(CAMPAIGN_FLAG, true).await;
    seed::put_campaign(
        &world.dynamo,
        world.stack.table("CampaignsTable"),
        &seed::campaign("c", MAILBOX_ID, 1),
    )
    .await;
    seed::put_lead(
        &world.dynamo,
        world.stack.table("CampaignLeadsTable"),
        &seed::lead("c", "lead"),
    )
    .await;
    world
        .tick::<CampaignJob>(&world.scheduled::<CampaignJob>(&[]).await)
        .await;
    world
        .drain::<CampaignJob>(&world.worker::<CampaignJob>(&[]).await)
        .await;

    world.set_flag(SMS_FLAG, true).await;
    let sequences = world.stack.table("SmsSequencesTable");
    seed::put_item(
        &world.dynamo,
        sequences,
        sequence_to_item(&seed::sequence("welcome", 1)),
    )
    .await;
    for (id, phone) in [("e1", "+15550100"), ("e2", "+1555bad")] {
        let enrollment = enrollment_to_item(&seed::enrollment(id, "welcome", phone));
        seed::put_item(
            &world.dynamo,
            world.stack.table("SmsEnrollmentsTable"),
            enrollment,
        )
        .await;
    }
    world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    world
        .drain::<SmsJob>(&world.worker::<SmsJob>(&NEVER_QUIET).await)
        .await;

    // Then each unit's outcome is said by id at DEBUG (one line per unit would be the
    // largest line of the bill at INFO), and INFO says what each batch and tick did
    let text = captured.text();
    let at = |level: &str| -> Vec<&str> {
        text.lines()
            .filter(|line| line.contains(&format!("\"level\":\"{level}\"")))
            .collect()
    };
    let (info, debug) = (at("INFO"), at("DEBUG"));
    // one "email sent" per mail the servers took, one "sms sent" per text
    let said = |lines: &[&str], message: &str| {
        lines
            .iter()
            .filter(|line| line.contains(&format!("\"message\":\"{message}\"")))
            .count()
    };
    let mails = world.smtp.received().len() + secure.received().len();
    assert_eq!(said(&debug, "email sent"), mails, "mails taken: {mails}");
    assert_eq!(said(&debug, "sms sent"), world.moto.recorded_sms().len());
    assert_eq!(said(&info, "email sent") + said(&info, "sms sent"), 0);
    assert!(
        debug.iter().any(|line| line.contains("private-1")),
        "no email id logged"
    );
    assert!(said(&info, "batch processed") > 0 && said(&info, "tick done") > 0);
    assert!(
        info.iter()
            .all(|line| !line.contains("\"message\":\"message handled\"")),
        "a per-record line at INFO"
    );
    // and no line at any level carries a password, though one login was refused (and
    // DEBUG and TRACE lines, the SDK's among them, were there to carry one)
    assert!(
        text.contains("535"),
        "the refused login is not in the logs: nothing to judge"
    );
    for level in ["DEBUG", "TRACE"] {
        assert!(
            text.contains(&format!("\"level\":\"{level}\"")),
            "no {level} line captured: nothing to judge at that level"
        );
    }
    for password in ["R1ght-Pa55", "Wr0ng-Pa55"] {
        assert!(!text.contains(password), "a password was logged");
    }
    // and no INFO line carries what only the recipient should see
    for secret in [
        "@example.com",
        "+1555",
        "Hello (",
        "<p>",
        "Step 0",
        "Kim",
        "Lead lead",
    ] {
        let leaks: Vec<&&str> = info.iter().filter(|line| line.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret:?} logged at INFO: {leaks:#?}");
    }
}
