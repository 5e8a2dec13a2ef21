//! Campaign processing end to end: process-campaigns and handle-campaign against moto,
//! with the emails they create going through the email queue.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Timelike, Utc};
use symphony_core::Envelope;
use symphony_jobs::campaign::{CAMPAIGN_FLAG, CampaignStatus, LeadStatus};
use symphony_jobs::email::{EMAIL_FLAG, EmailMessage, EmailStatus};
use symphony_jobs::window::HourWindow;
use symphony_tests::seed;
use symphony_tests::world::{CampaignJob, EmailJob};
use symphony_tests::world::{MAILBOX_ID, World};

async fn seed_campaign(world: &World, campaign_id: &str, steps: usize, leads: &[&str]) {
    let dynamo: &Client = &world.dynamo;
    seed::put_campaign(
        dynamo,
        world.stack.table("CampaignsTable"),
        &seed::campaign(campaign_id, MAILBOX_ID, steps),
    )
    .await;
    for lead in leads {
        seed::put_lead(
            dynamo,
            world.stack.table("CampaignLeadsTable"),
            &seed::lead(campaign_id, lead),
        )
        .await;
    }
}

async fn queued_email_ids(world: &World) -> Vec<String> {
    let mut ids: Vec<String> = seed::peek_bodies(&world.sqs, &world.stack.queue("EmailQueue").url)
        .await
        .iter()
        .map(|body| {
            Envelope::from_body(Some(body))
                .map(|e| e.decode::<EmailMessage>().expect("an EmailMessage"))
                .expect("an envelope")
                .email_id
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_makes_one_email_per_due_lead_even_when_the_campaign_message_comes_twice() {
    // Given a campaign with three due leads, one that replied and one not yet due
    let world = World::start().await;
    world.set_flag(CAMPAIGN_FLAG, true).await;
    world.set_email_flag(true).await;
    seed_campaign(&world, "spring", 2, &["a", "b", "c"]).await;
    let leads = world.stack.table("CampaignLeadsTable");
    let mut replied = seed::lead("spring", "replied");
    replied.status = LeadStatus::Replied;
    seed::put_lead(&world.dynamo, leads, &replied).await;
    let mut later = seed::lead("spring", "later");
    later.next_due_at = Utc::now().timestamp() + 3_600;
    seed::put_lead(&world.dynamo, leads, &later).await;

    // When a tick dispatches the campaign and its message is delivered twice
    let report = world
        .tick::<CampaignJob>(&world.scheduled::<CampaignJob>(&[]).await)
        .await;
    assert_eq!((report.due, report.dispatched), (1, 1));
    let queue = world.stack.queue("CampaignQueue");
    seed::redeliver_first(&world.sqs, &queue.url).await;
    let drained = world
        .drain::<CampaignJob>(&world.worker::<CampaignJob>(&[]).await)
        .await;

    // Then each due lead got exactly one email, on the email queue, rendered for them
    assert_eq!(drained.succeeded, 2);
    let expected = ["spring.a.0", "spring.b.0", "spring.c.0"];
    let emails = world.all_emails().await;
    let ids: Vec<&str> = emails.iter().map(|e| e.message.email_id.as_str()).collect();
    assert_eq!(ids, expected);
    assert_eq!(queued_email_ids(&world).await, expected);
    assert_eq!(emails[0].message.subject, "Step 0 for Lead a");
    assert_eq!(
        emails[0].message.html,
        "<p>Hi Lead a, step 0 about Initech</p>"
    );
    assert!(emails.iter().all(|e| e.status == EmailStatus::Claimed));
    // and each lead moved on to step 1, due a day later; the others were not touched
    let a = seed::get_lead(&world.dynamo, leads, "spring", "a").await;
    assert_eq!(a.current_step, 1);
    assert!(a.next_due_at > Utc::now().timestamp() + 23 * 3_600);
    assert_eq!(
        seed::get_lead(&world.dynamo, leads, "spring", "replied")
            .await
            .current_step,
        0
    );
    assert_eq!(
        seed::get_lead(&world.dynamo, leads, "spring", "later")
            .await
            .current_step,
        0
    );

    // And the email worker sends them
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;
    assert_eq!(world.delivered_ids(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_limit_holds_when_two_handlers_run_at_once() {
    // Given two campaigns of three due leads each, sharing a mailbox that may send 4 a day
    let world = World::start().await;
    seed::set_daily_limit(
        &world.dynamo,
        world.stack.table("MailboxesTable"),
        MAILBOX_ID,
        4,
    )
    .await;
    seed_campaign(&world, "north", 1, &["n1", "n2", "n3"]).await;
    seed_campaign(&world, "south", 1, &["s1", "s2", "s3"]).await;
    let (one, two) = (
        world.worker::<CampaignJob>(&[]).await,
        world.worker::<CampaignJob>(&[]).await,
    );
    let queue = world.stack.queue("CampaignQueue");
    for campaign in ["north", "south"] {
        let message = symphony_jobs::campaign::CampaignProcessingMessage {
            campaign_id: campaign.into(),
            user_id: "user-1".into(),
            action: symphony_jobs::campaign::CampaignAction::Process,
        };
        let body = Envelope::wrap(&message, "test", None).unwrap().to_body();
        seed::send_body(&world.sqs, &queue.url, body).await;
    }
    let event = symphony_tests::receive_event(&world.sqs, queue, 180).await;
    assert_eq!(event.records.len(), 2);
    let (first, second) = (event.clone(), event);

    // When two handlers process both campaigns at the same moment
    let context = lambda_runtime::Context::default;
    let (a, b) = tokio::join!(
        one.handle(lambda_runtime::LambdaEvent::new(first, context())),
        two.handle(lambda_runtime::LambdaEvent::new(second, context()))
    );
    assert!(a.unwrap().batch_item_failures.is_empty());
    assert!(b.unwrap().batch_item_failures.is_empty());

    // Then exactly four emails exist, and the other two leads wait at step 0, still active
    assert_eq!(world.all_emails().await.len(), 4);
    let leads = world.stack.table("CampaignLeadsTable");
    let mut waiting = 0;
    for (campaign, lead) in [
        ("north", "n1"),
        ("north", "n2"),
        ("north", "n3"),
        ("south", "s1"),
        ("south", "s2"),
        ("south", "s3"),
    ] {
        let lead = seed::get_lead(&world.dynamo, leads, campaign, lead).await;
        if lead.current_step == 0 {
            assert_eq!(lead.status, LeadStatus::Active);
            waiting += 1;
        }
    }
    assert_eq!(waiting, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_sending_window_leads_wait() {
    // Given a campaign whose window opens two hours from now (UTC)
    let world = World::start().await;
    let hour = Utc::now().hour();
    let mut campaign = seed::campaign("closed", MAILBOX_ID, 1);
    campaign.window = HourWindow::new((hour + 2) % 24, (hour + 3) % 24).unwrap();
    seed::put_campaign(
        &world.dynamo,
        world.stack.table("CampaignsTable"),
        &campaign,
    )
    .await;
    seed::put_lead(
        &world.dynamo,
        world.stack.table("CampaignLeadsTable"),
        &seed::lead("closed", "early"),
    )
    .await;
    world.set_flag(CAMPAIGN_FLAG, true).await;

    // When the campaign is processed
    world
        .tick::<CampaignJob>(&world.scheduled::<CampaignJob>(&[]).await)
        .await;
    let drained = world
        .drain::<CampaignJob>(&world.worker::<CampaignJob>(&[]).await)
        .await;

    // Then the run succeeds but makes no email: the lead waits, unchanged
    assert_eq!(drained.succeeded, 1);
    assert!(world.all_emails().await.is_empty());
    let lead = seed::get_lead(
        &world.dynamo,
        world.stack.table("CampaignLeadsTable"),
        "closed",
        "early",
    )
    .await;
    assert_eq!((lead.current_step, lead.status), (0, LeadStatus::Active));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_flip_sends_the_next_tick_down_the_legacy_path() {
    // Given a running process-campaigns that dispatched one campaign with the flag on
    let world = World::start().await;
    let function = world.scheduled::<CampaignJob>(&[]).await;
    world.set_flag(CAMPAIGN_FLAG, true).await;
    seed_campaign(&world, "queued", 1, &["q"]).await;
    let first = world.tick::<CampaignJob>(&function).await;

    // When the flag is turned off and a new campaign starts
    world.set_flag(CAMPAIGN_FLAG, false).await;
    seed_campaign(&world, "inline", 1, &["x", "y"]).await;
    let second = world.tick::<CampaignJob>(&function).await;

    // Then the next tick processes it inline (the first, still leased, is not even taken)
    assert_eq!((first.dispatched, first.legacy), (1, 0));
    assert_eq!(
        (second.due, second.dispatched, second.legacy, second.skipped),
        (1, 0, 1, 0)
    );
    assert_eq!(
        seed::queue_depth(&world.sqs, &world.stack.queue("CampaignQueue").url).await,
        1
    );
    // The legacy path leaves the new emails queued for the email tick, as the old routes did
    let emails = world.all_emails().await;
    let ids: Vec<&str> = emails.iter().map(|e| e.message.email_id.as_str()).collect();
    assert_eq!(ids, ["inline.x.0", "inline.y.0"]);
    assert!(emails.iter().all(|e| e.status == EmailStatus::Queued));
    // and the one-step campaign is complete
    let campaign =
        seed::get_campaign(&world.dynamo, world.stack.table("CampaignsTable"), "inline").await;
    assert_eq!(campaign.status, CampaignStatus::Completed);
    // while the message queued before the rollback still drains
    world
        .drain::<CampaignJob>(&world.worker::<CampaignJob>(&[]).await)
        .await;
    assert_eq!(world.all_emails().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_variable_fails_that_lead_alone_and_lead_values_are_escaped() {
    let world = World::start().await;
    seed_campaign(&world, "vars", 1, &["ok"]).await;
    let leads = world.stack.table("CampaignLeadsTable");
    let mut no_company = seed::lead("vars", "nocompany");
    no_company.fields.clear();
    seed::put_lead(&world.dynamo, leads, &no_company).await;
    let mut sneaky = seed::lead("vars", "sneaky");
    sneaky.first_name = "<script>alert(1)</script>".into();
    seed::put_lead(&world.dynamo, leads, &sneaky).await;
    world.set_flag(CAMPAIGN_FLAG, false).await;

    world
        .tick::<CampaignJob>(&world.scheduled::<CampaignJob>(&[]).await)
        .await;

    let emails = world.all_emails().await;
    let ids: Vec<&str> = emails.iter().map(|e| e.message.email_id.as_str()).collect();
    assert_eq!(ids, ["vars.ok.0", "vars.sneaky.0"]);
    assert!(
        emails[1]
            .message
            .html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        emails[1].message.html
    );
    let failed = seed::get_lead(&world.dynamo, leads, "vars", "nocompany").await;
    assert_eq!(failed.status, LeadStatus::Failed);
    // and its record says which value was missing
    let item = world
        .dynamo
        .get_item()
        .table_name(leads)
        .key("campaignId", AttributeValue::S("vars".into()))
        .key("leadId", AttributeValue::S("nocompany".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let reason = item["lastError"].as_s().unwrap();
    assert!(reason.contains("company"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_ticks_dispatch_a_campaign_once() {
    let world = World::start().await;
    world.set_flag(CAMPAIGN_FLAG, true).await;
    seed_campaign(&world, "busy", 1, &["l1"]).await;
    let (one, two) = (
        world.scheduled::<CampaignJob>(&[]).await,
        world.scheduled::<CampaignJob>(&[]).await,
    );

    let (a, b) = tokio::join!(
        world.tick::<CampaignJob>(&one),
        world.tick::<CampaignJob>(&two)
    );

    // One dispatched it; the other found it leased (skipped) or, querying after the
    // lease, did not see it as due at all
    assert_eq!(a.dispatched + b.dispatched, 1, "{a:?} {b:?}");
    for report in [&a, &b] {
        assert_eq!(report.due, report.dispatched + report.skipped, "{report:?}");
    }
    assert_eq!(
        seed::queue_depth(&world.sqs, &world.stack.queue("CampaignQueue").url).await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emails_a_campaign_creates_follow_the_email_jobs_flag() {
    // Given the campaign flag on and the email job's flag off
    let world = World::start().await;
    world.set_flag(CAMPAIGN_FLAG, true).await;
    world.set_email_flag(false).await;
    seed_campaign(&world, "autumn", 1, &["a", "b"]).await;

    // When the campaign runs on the symphony path
    world
        .tick::<CampaignJob>(&world.scheduled::<CampaignJob>(&[]).await)
        .await;
    world
        .drain::<CampaignJob>(&world.worker::<CampaignJob>(&[]).await)
        .await;

    // Then its emails wait, queued, for the email tick, and none is on the email queue
    let emails = world.all_emails().await;
    assert_eq!(emails.len(), 2);
    assert!(
        emails.iter().all(|e| e.status == EmailStatus::Queued),
        "{emails:?}"
    );
    assert!(queued_email_ids(&world).await.is_empty());

    // And the email tick sends them on its legacy path, once each
    let report = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert_eq!((report.legacy, report.dispatched), (2, 0), "{report:?}");
    assert_eq!(world.delivered_ids(), ["autumn.a.0", "autumn.b.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_beyond_the_tick_limit_get_their_turn() {
    // Given two active campaigns and a tick that takes one
    let world = World::start().await;
    world.set_flag(CAMPAIGN_FLAG, true).await;
    seed_campaign(&world, "first", 1, &["a"]).await;
    seed_campaign(&world, "second", 1, &["b"]).await;
    let function = world
        .scheduled::<CampaignJob>(&[("CAMPAIGN_TICK_LIMIT", "1")])
        .await;

    // When two ticks run while the first campaign's lease still holds
    let first = world.tick::<CampaignJob>(&function).await;
    let second = world.tick::<CampaignJob>(&function).await;

    // Then the second tick dispatches the other campaign instead of meeting the leased one
    assert_eq!((first.dispatched, first.skipped), (1, 0), "{first:?}");
    assert_eq!((second.dispatched, second.skipped), (1, 0), "{second:?}");
    assert_eq!(
        seed::queue_depth(&world.sqs, &world.stack.queue("CampaignQueue").url).await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_take_the_campaigns_whose_last_run_is_oldest() {
    // Given three active campaigns whose leases are over: one run a minute ago, one an hour
    // ago, one never, put in that order (the index's order, if nothing else decides)
    let world = World::start().await;
    world.set_flag(CAMPAIGN_FLAG, true).await;
    let now = Utc::now().timestamp();
    let campaigns = world.stack.table("CampaignsTable");
    for (campaign_id, lease_ended) in [
        ("recent", Some(now - 60)),
        ("hour-ago", Some(now - 3_600)),
        ("never", None),
    ] {
        seed_campaign(&world, campaign_id, 1, &["a"]).await;
        if let Some(until) = lease_ended {
            world
                .dynamo
                .update_item()
                .table_name(campaigns)
                .key("campaignId", AttributeValue::S(campaign_id.into()))
                .update_expression("SET leaseUntil = :until")
                .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
                .send()
                .await
                .unwrap();
        }
    }
    let function = world
        .scheduled::<CampaignJob>(&[("CAMPAIGN_TICK_LIMIT", "1")])
        .await;

    // When three ticks run, each taking one
    let mut order = Vec::new();
    for _ in 0..3 {
        let report = world.tick::<CampaignJob>(&function).await;
        assert_eq!(report.dispatched, 1, "{report:?}");
        let event =
            symphony_tests::receive_event(&world.sqs, world.stack.queue("CampaignQueue"), 600)
                .await;
        for record in &event.records {
            let envelope = Envelope::from_body(record.body.as_deref()).unwrap();
            order.push(envelope.meta.correlation_id);
        }
    }

    // Then the never-run campaign goes first, then the one run longest ago
    assert_eq!(order, ["never", "hour-ago", "recent"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_whose_run_was_lost_runs_again_once_its_lease_ends_and_not_before() {
    // Given a campaign dispatched by a tick, whose message is then lost (its worker died
    // and the message with it)
    let world = World::start().await;
    world.set_flag(CAMPAIGN_FLAG, true).await;
    seed_campaign(&world, "orphaned", 1, &["a"]).await;
    let function = world.scheduled::<CampaignJob>(&[]).await;
    let first = world.tick::<CampaignJob>(&function).await;
    assert_eq!(first.dispatched, 1, "{first:?}");
    let queue = world.stack.queue("CampaignQueue").url.clone();
    world
        .sqs
        .purge_queue()
        .queue_url(&queue)
        .send()
        .await
        .unwrap();

    // When a tick runs while the lease holds, and another once it has ended
    let during = world.tick::<CampaignJob>(&function).await;
    world
        .dynamo
        .update_item()
        .table_name(world.stack.table("CampaignsTable"))
        .key("campaignId", AttributeValue::S("orphaned".into()))
        .update_expression("SET leaseUntil = :ended")
        .expression_attribute_values(
            ":ended",
            AttributeValue::N((Utc::now().timestamp() - 1).to_string()),
        )
        .send()
        .await
        .unwrap();
    let after = world.tick::<CampaignJob>(&function).await;

    // Then the first leaves it alone and the second dispatches it again
    assert_eq!((during.due, during.dispatched), (0, 0), "{during:?}");
    assert_eq!((after.due, after.dispatched), (1, 1), "{after:?}");
    assert_eq!(seed::queue_depth(&world.sqs, &queue).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_run_with_too_little_time_left_leaves_its_leads_for_the_next_run() {
    // Given a campaign with two due leads, on the legacy path, and a tick invoked with
    // eight seconds left: enough to start the campaign's run, too little for a lead
    let world = World::start().await;
    world.set_flag(CAMPAIGN_FLAG, false).await;
    world.set_flag(EMAIL_FLAG, false).await;
    seed_campaign(&world, "hurried", 1, &["a", "b"]).await;
    let function = world.scheduled::<CampaignJob>(&[]).await;
    let mut context = lambda_runtime::Context::default();
    context.deadline = u64::try_from(Utc::now().timestamp_millis()).unwrap() + 8_000;

    // When the tick runs
    let report = function
        .handle(lambda_runtime::LambdaEvent::new(
            symphony_tests::world::schedule_event("campaigns"),
            context,
        ))
        .await
        .unwrap();

    // Then the run answered without making any email, and the leads wait, unchanged
    assert_eq!((report.legacy, report.failed), (1, 0), "{report:?}");
    assert!(world.all_emails().await.is_empty());
    for lead_id in ["a", "b"] {
        let lead = seed::get_lead(
            &world.dynamo,
            world.stack.table("CampaignLeadsTable"),
            "hurried",
            lead_id,
        )
        .await;
        assert_eq!((lead.current_step, lead.status), (0, LeadStatus::Active));
    }
}
