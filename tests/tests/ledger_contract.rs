//! The lifecycle's ledger contract (`symphony_core::ledger::contract`), kept by the
//! DynamoDB ledger on the template's real tables in moto, for each job that sends a unit
//! once: the same suite the in-memory ledger passes in the core's unit tests; and the
//! campaign ports' contract, kept by their DynamoDB adapters as by the memory ones.

use symphony_adapters::email::dynamo::email_ledger;
use symphony_adapters::sms::dynamo::enrollment_ledger;
use symphony_core::ledger::{LedgerRecord, Progress, contract};
use symphony_jobs::email::{EmailMessage, EmailRecord, EmailStatus};
use symphony_jobs::sms::Enrollment;
use symphony_tests::seed;
use symphony_tests::world::World;

fn email(id: &str, _step: usize, due_at: i64) -> EmailRecord {
    EmailRecord {
        message: EmailMessage {
            email_id: id.to_owned(),
            user_id: "user-1".into(),
            mailbox_id: "mailbox-1".into(),
            to_email: "lead@example.com".into(),
            subject: "Hello".into(),
            html: "<p>Hi</p>".into(),
            from_name: Some("Ada".into()),
            from_email: Some("ada@example.com".into()),
        },
        status: EmailStatus::Queued,
        due_at,
        claimed_by: None,
        last_error: None,
    }
}

fn enrollment(id: &str, step: usize, due_at: i64) -> Enrollment {
    let mut enrollment = seed::enrollment(id, "sequence-1", "+15550100");
    enrollment.set_progress(Progress {
        step,
        due_at,
        ..enrollment.progress()
    });
    enrollment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emails_table_keeps_the_ledger_contract() {
    let world = World::start().await;
    let ledger = email_ledger(world.dynamo.clone(), world.emails_table());
    contract::check(&ledger, email, "contract-email").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enrollments_table_keeps_the_ledger_contract() {
    let world = World::start().await;
    let table = world.stack.table("SmsEnrollmentsTable");
    let ledger = enrollment_ledger(world.dynamo.clone(), table);
    contract::check(&ledger, enrollment, "contract-enrollment").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_campaign_tables_keep_the_campaign_ports_contract() {
    use symphony_adapters::campaign::dynamo::{
        DynamoCampaignStore, DynamoLeadStore, DynamoSendQuota,
    };
    use symphony_jobs::campaign::{CampaignStatus, LeadStatus, contract};

    let world = World::start().await;
    let (campaigns, leads, quotas) = (
        world.stack.table("CampaignsTable"),
        world.stack.table("CampaignLeadsTable"),
        world.stack.table("MailboxQuotasTable"),
    );
    let active = seed::campaign("contract-c1", "mailbox-1", 1);
    let mut paused = seed::campaign("contract-c2", "mailbox-1", 1);
    paused.status = CampaignStatus::Paused;
    for campaign in [&active, &paused] {
        seed::put_campaign(&world.dynamo, campaigns, campaign).await;
    }
    let store = DynamoCampaignStore::new(world.dynamo.clone(), campaigns);
    contract::check_campaigns(&store, &active, &paused).await;

    let due = seed::lead("contract-c1", "due");
    let mut waiting = seed::lead("contract-c1", "waiting");
    waiting.next_due_at += 3_660;
    let mut done = seed::lead("contract-c1", "done");
    done.status = LeadStatus::Finished;
    for lead in [&due, &waiting, &done] {
        seed::put_lead(&world.dynamo, leads, lead).await;
    }
    let store = DynamoLeadStore::new(world.dynamo.clone(), leads);
    contract::check_leads(&store, &due, &waiting, &done).await;

    let quota = DynamoSendQuota::new(world.dynamo.clone(), quotas);
    contract::check_quota(&quota, "mailbox-1").await;
}
