//! `symphony-dlq` against moto: an operator lists a job's dead-letter queue with the
//! reasons, fixes a cause, and moves that message back; the worker then sends it.

use symphony_dlq::{Command, DlqError, run};
use symphony_jobs::email::EMAIL_FLAG;
use symphony_tests::seed;
use symphony_tests::services::RefusingPort;
use symphony_tests::world::EmailJob;
use symphony_tests::world::{MAILBOX_ID, World};

async fn dlq(world: &World, command_line: &str) -> Result<String, DlqError> {
    let args: Vec<String> = command_line.split_whitespace().map(str::to_owned).collect();
    let command = Command::parse(&args, &symphony_core::config::from_pairs(&[]))?;
    let mut out = Vec::new();
    run(&command, &world.sqs, &mut out).await?;
    Ok(String::from_utf8(out).expect("the output is UTF-8"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_the_reasons_fixes_a_cause_and_moves_the_message_back() {
    // Given three emails: one rejected for good (550), one whose mailbox points at a port
    // where nothing listens (it fails on all five attempts the queue allows), one fine;
    // and a malformed body from the web app
    let world = World::start().await;
    let mailboxes = world.stack.table("MailboxesTable");
    let closed = RefusingPort::bind();
    seed::put_loopback_mailbox(&world.dynamo, mailboxes, "mailbox-down", closed.port).await;
    world.set_flag(EMAIL_FLAG, true).await;
    for (id, mailbox, to) in [
        ("dl-rejected", MAILBOX_ID, "bounce-1@example.com"),
        ("dl-down", "mailbox-down", "lead-2@example.com"),
        ("dl-fine", MAILBOX_ID, "lead-3@example.com"),
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

    // When the operator lists the email DLQ
    let listing = dlq(&world, "list email --stack symphony-local")
        .await
        .expect("list fails");

    // Then each message is there with why, and no payload shows
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines[0], "3 messages in symphony-local-email-dlq",
        "{listing}"
    );
    let row = |unit: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|line| line.split('\t').nth(2) == Some(unit))
            .unwrap_or_else(|| panic!("no line for {unit}:\n{listing}"))
            .split('\t')
            .collect()
    };
    let rejected = row("dl-rejected");
    assert_eq!(
        &rejected[1..5],
        ["EmailMessage", "dl-rejected", "permanent", "1"]
    );
    assert!(rejected[6].contains("550"), "{listing}");
    let down = row("dl-down");
    // (its fifth and last attempt put it there, with the last failure's reason)
    assert_eq!(&down[3..5], ["exhausted", "5"], "{listing}");
    assert!(down[6].contains("SMTP"), "{listing}");
    let malformed = row("-");
    assert_eq!(malformed[3], "malformed", "{listing}");
    assert!(!listing.contains("<p>Message"), "a body showed:\n{listing}");
    // and listing left every message in the queue
    let dead_letter_queue = &world.stack.queue("EmailDeadLetterQueue").url;
    assert_eq!(
        seed::dead_letters(&world.sqs, dead_letter_queue)
            .await
            .len(),
        3
    );

    // When the mailbox is fixed and that one message is moved back
    seed::put_loopback_mailbox(&world.dynamo, mailboxes, "mailbox-down", world.smtp.port).await;
    let moved = dlq(
        &world,
        &format!(
            "redrive email --stack symphony-local --message-id {} --message-id nope",
            down[0]
        ),
    )
    .await
    .expect("redrive fails");

    // Then it is back on the email queue and the worker sends it; the others stay
    assert!(
        moved.contains(&format!("moved {} to symphony-local-email", down[0])),
        "{moved}"
    );
    assert!(moved.contains("not found: nope"), "{moved}");
    assert!(moved.contains("1 moved, 2 left"), "{moved}");
    world.drain::<EmailJob>(&worker).await;
    assert_eq!(world.delivered_ids(), ["dl-down", "dl-fine"]);
    assert_eq!(
        seed::dead_letters(&world.sqs, dead_letter_queue)
            .await
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_without_the_queue_is_named_in_the_error() {
    let world = World::start().await;
    let error = dlq(&world, "list sms --stack nope")
        .await
        .expect_err("no such stack")
        .to_string();
    assert!(error.contains("queue nope-sms cannot be found"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_policy_changed_in_place_reaches_a_warm_worker() {
    use symphony_core::FailureRoutes;

    // Given a worker's routes that read the email queue's maxReceiveCount (5) at start
    let world = World::start().await;
    let queue = &world.stack.queue("EmailQueue").url;
    let dlq = world.stack.queue("EmailDeadLetterQueue");
    let routes = symphony_aws::SqsFailureRoutes::connect(world.sqs.clone(), queue, &dlq.url)
        .await
        .unwrap()
        .with_refresh(std::time::Duration::ZERO);
    assert_eq!(routes.max_receive_count().await, Some(5));

    // When an operator lowers it to 3 without a redeploy
    let policy = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":3}}"#,
        dlq.arn
    );
    world
        .sqs
        .set_queue_attributes()
        .queue_url(queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            policy,
        )
        .send()
        .await
        .unwrap();

    // Then the routes follow it (the batch then takes the third attempt as the last)
    assert_eq!(routes.max_receive_count().await, Some(3));
}
