//! The lifecycle's ledger contract (`symphony_core::ledger::contract`), kept by the
//! DynamoDB ledger on the template's real tables in moto, for each job that sends a unit
//! once: the same suite the in-memory ledger passes in the core's unit tests.

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
            from_name: "Ada".into(),
            from_email: "ada@example.com".into(),
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
