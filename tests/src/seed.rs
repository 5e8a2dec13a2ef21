//! Test data: flags, mailboxes and emails as the web app would write them.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::Utc;
use symphony_adapters::campaign::dynamo::{
    campaign_from_item, campaign_to_item, lead_from_item, lead_to_item,
};
use symphony_adapters::email::dynamo::{email_from_item, email_to_item};
use symphony_adapters::sms::dynamo::enrollment_from_item;
use symphony_jobs::campaign::{Campaign, CampaignStatus, CampaignStep, Lead, LeadStatus};
use symphony_jobs::email::{EmailMessage, EmailRecord, EmailStatus};
use symphony_jobs::sms::{Enrollment, EnrollmentStatus, Sequence, SmsStep};
use symphony_jobs::window::HourWindow;

type Item = std::collections::HashMap<String, AttributeValue>;

/// Stores a secret in Secrets Manager.
pub async fn create_secret(sdk: &aws_config::SdkConfig, name: &str, value: &str) {
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create the secret {name}: {e:?}"));
}

/// A mailbox on 127.0.0.1 that logs in as `symphony` over STARTTLS, its password
/// referenced by `password_ref`.
pub async fn put_login_mailbox(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    mailbox_id: &str,
    smtp_port: u16,
    password_ref: &str,
) {
    let mut item = mailbox_item(mailbox_id, smtp_port, "starttls");
    item.insert(
        "smtpUsername".to_owned(),
        AttributeValue::S("symphony".to_owned()),
    );
    item.insert(
        "smtpPasswordRef".to_owned(),
        AttributeValue::S(password_ref.to_owned()),
    );
    put_item(dynamo, table, item).await;
}

/// Writes a flag item.
pub async fn put_flag(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    name: &str,
    enabled: bool,
    rollout_percent: u8,
) {
    dynamo
        .put_item()
        .table_name(table)
        .item("name", AttributeValue::S(name.to_owned()))
        .item("enabled", AttributeValue::Bool(enabled))
        .item(
            "rolloutPercent",
            AttributeValue::N(rollout_percent.to_string()),
        )
        .item("updatedAt", AttributeValue::S(Utc::now().to_rfc3339()))
        .item("updatedBy", AttributeValue::S("symphony-tests".to_owned()))
        .item("reason", AttributeValue::S("test set-up".to_owned()))
        .send()
        .await
        .expect("cannot write a flag");
}

/// Turns the global switch and one job's flag on or off together.
pub async fn set_job_flags(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    job_flag: &str,
    enabled: bool,
) {
    put_flag(dynamo, table, symphony_core::flags::GLOBAL_FLAG, true, 100).await;
    put_flag(dynamo, table, job_flag, enabled, 100).await;
}

/// A mailbox that sends through an SMTP server on loopback, without TLS.
pub async fn put_loopback_mailbox(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    mailbox_id: &str,
    smtp_port: u16,
) {
    put_mailbox(dynamo, table, mailbox_id, smtp_port, "none").await;
}

/// A loopback mailbox that gives the sender of the emails that name none.
pub async fn put_loopback_mailbox_with_sender(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    mailbox_id: &str,
    smtp_port: u16,
    (from_name, from_email): (&str, &str),
) {
    let mut item = mailbox_item(mailbox_id, smtp_port, "none");
    item.insert(
        "fromName".to_owned(),
        AttributeValue::S(from_name.to_owned()),
    );
    item.insert(
        "fromEmail".to_owned(),
        AttributeValue::S(from_email.to_owned()),
    );
    put_item(dynamo, table, item).await;
}

/// A mailbox on 127.0.0.1 with the given `smtpSecurity` (`tls`, `starttls`, `none`).
pub async fn put_mailbox(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    mailbox_id: &str,
    smtp_port: u16,
    security: &str,
) {
    put_item(dynamo, table, mailbox_item(mailbox_id, smtp_port, security)).await;
}

fn mailbox_item(mailbox_id: &str, smtp_port: u16, security: &str) -> Item {
    Item::from([
        (
            "mailboxId".to_owned(),
            AttributeValue::S(mailbox_id.to_owned()),
        ),
        ("userId".to_owned(), AttributeValue::S("user-1".to_owned())),
        (
            "smtpHost".to_owned(),
            AttributeValue::S("127.0.0.1".to_owned()),
        ),
        (
            "smtpPort".to_owned(),
            AttributeValue::N(smtp_port.to_string()),
        ),
        (
            "smtpSecurity".to_owned(),
            AttributeValue::S(security.to_owned()),
        ),
    ])
}

/// A queued email, due a minute ago.
pub fn queued_email(email_id: &str, mailbox_id: &str, to_email: &str) -> EmailRecord {
    EmailRecord {
        message: EmailMessage {
            email_id: email_id.to_owned(),
            user_id: "user-1".to_owned(),
            mailbox_id: mailbox_id.to_owned(),
            to_email: to_email.to_owned(),
            subject: format!("Hello ({email_id})"),
            html: format!("<p>Message {email_id}</p>"),
            from_name: Some("Ada from Acme".to_owned()),
            from_email: Some("ada@acme.example".to_owned()),
        },
        status: EmailStatus::Queued,
        due_at: Utc::now().timestamp() - 60,
        claimed_by: None,
        last_error: None,
    }
}

pub async fn put_email(dynamo: &aws_sdk_dynamodb::Client, table: &str, email: &EmailRecord) {
    put_item(dynamo, table, email_to_item(email)).await;
}

pub async fn get_email(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    email_id: &str,
) -> EmailRecord {
    let item = get_item(dynamo, table, &[("emailId", email_id)]).await;
    email_from_item(&item).expect("the email item is invalid")
}

/// Messages in a queue, visible or in flight.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> usize {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("cannot read the queue's attributes");
    let attributes = output.attributes().cloned().unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .filter_map(|name| attributes.get(name)?.parse::<usize>().ok())
    .sum()
}

/// The bodies of every message in a queue, left on the queue and visible again.
pub async fn peek_bodies(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut handles = Vec::new();
    loop {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("ReceiveMessage failed");
        if output.messages().is_empty() {
            break;
        }
        for message in output.messages() {
            bodies.extend(message.body().map(str::to_owned));
            handles.extend(message.receipt_handle().map(str::to_owned));
        }
    }
    for handle in handles {
        sqs.change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .expect("ChangeMessageVisibility failed");
    }
    bodies
}

/// A one- or multi-step campaign whose sending window is always open, in UTC.
pub fn campaign(campaign_id: &str, mailbox_id: &str, steps: usize) -> Campaign {
    Campaign {
        campaign_id: campaign_id.to_owned(),
        user_id: "user-1".to_owned(),
        status: CampaignStatus::Active,
        mailbox_id: mailbox_id.to_owned(),
        from_name: "Ada from Acme".to_owned(),
        from_email: "ada@acme.example".to_owned(),
        time_zone: chrono_tz::Tz::UTC,
        window: HourWindow::new(0, 24).expect("an all-day window"),
        steps: (0..steps)
            .map(|n| CampaignStep {
                subject: format!("Step {n} for {{{{firstName}}}}"),
                html: format!("<p>Hi {{{{ firstName }}}}, step {n} about {{{{ company }}}}</p>"),
                delay_hours: 24,
            })
            .collect(),
    }
}

/// An active lead, due a minute ago, at step 0.
pub fn lead(campaign_id: &str, lead_id: &str) -> Lead {
    Lead {
        campaign_id: campaign_id.to_owned(),
        lead_id: lead_id.to_owned(),
        email: format!("{lead_id}@example.com"),
        first_name: format!("Lead {lead_id}"),
        last_name: String::new(),
        fields: std::collections::BTreeMap::from([("company".to_owned(), "Initech".to_owned())]),
        current_step: 0,
        next_due_at: Utc::now().timestamp() - 60,
        status: LeadStatus::Active,
    }
}

pub async fn put_campaign(dynamo: &aws_sdk_dynamodb::Client, table: &str, campaign: &Campaign) {
    put_item(dynamo, table, campaign_to_item(campaign)).await;
}

pub async fn put_lead(dynamo: &aws_sdk_dynamodb::Client, table: &str, lead: &Lead) {
    put_item(dynamo, table, lead_to_item(lead)).await;
}

pub async fn get_lead(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    campaign_id: &str,
    lead_id: &str,
) -> Lead {
    let key = [("campaignId", campaign_id), ("leadId", lead_id)];
    lead_from_item(&get_item(dynamo, table, &key).await).expect("the lead item is invalid")
}

pub async fn get_campaign(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    campaign_id: &str,
) -> Campaign {
    let item = get_item(dynamo, table, &[("campaignId", campaign_id)]).await;
    campaign_from_item(&item).expect("the campaign item is invalid")
}

/// Sets a mailbox's daily limit of campaign emails.
pub async fn set_daily_limit(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    mailbox_id: &str,
    limit: u32,
) {
    dynamo
        .update_item()
        .table_name(table)
        .key("mailboxId", AttributeValue::S(mailbox_id.to_owned()))
        .update_expression("SET dailyLimit = :limit")
        .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
        .send()
        .await
        .expect("cannot set the daily limit");
}

/// A sequence of `steps` texts, a day apart: "Step n, {{firstName}}".
pub fn sequence(sequence_id: &str, steps: usize) -> Sequence {
    Sequence {
        sequence_id: sequence_id.to_owned(),
        user_id: "user-1".to_owned(),
        steps: (0..steps)
            .map(|n| SmsStep {
                body: format!("Step {n}, {{{{firstName}}}}"),
                delay_hours: 24,
            })
            .collect(),
    }
}

/// An active enrollment at step 0, due a minute ago, in UTC.
pub fn enrollment(enrollment_id: &str, sequence_id: &str, phone: &str) -> Enrollment {
    Enrollment {
        enrollment_id: enrollment_id.to_owned(),
        sequence_id: sequence_id.to_owned(),
        user_id: "user-1".to_owned(),
        phone: phone.to_owned(),
        time_zone: chrono_tz::Tz::UTC,
        fields: std::collections::BTreeMap::from([("firstName".to_owned(), "Kim".to_owned())]),
        current_step: 0,
        next_send_at: Utc::now().timestamp() - 60,
        status: EnrollmentStatus::Active,
        claimed_by: None,
        last_error: None,
    }
}

pub async fn put_item(dynamo: &aws_sdk_dynamodb::Client, table: &str, item: Item) {
    dynamo
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot write to {table}: {e:?}"));
}

/// A consistent read of the item with `key` (string attributes); panics if there is none.
pub async fn get_item(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &[(&str, &str)],
) -> Item {
    let key: Item = key
        .iter()
        .map(|(name, value)| ((*name).to_owned(), AttributeValue::S((*value).to_owned())))
        .collect();
    dynamo
        .get_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot read from {table}: {e:?}"))
        .item
        .unwrap_or_else(|| panic!("{table} has no item {key:?}"))
}

pub async fn get_enrollment(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    enrollment_id: &str,
) -> Enrollment {
    let item = get_item(dynamo, table, &[("enrollmentId", enrollment_id)]).await;
    enrollment_from_item(&item).expect("the enrollment item is invalid")
}

/// Puts a message body on a queue, as the web app or a redelivery would.
pub async fn send_body(sqs: &aws_sdk_sqs::Client, queue_url: &str, body: impl Into<String>) {
    sqs.send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .expect("SendMessage failed");
}

/// Delivers the first message of a queue a second time (SQS delivers at least once).
pub async fn redeliver_first(sqs: &aws_sdk_sqs::Client, queue_url: &str) {
    let body = peek_bodies(sqs, queue_url)
        .await
        .into_iter()
        .next()
        .expect("the queue is empty");
    send_body(sqs, queue_url, body).await;
}

/// A dead-lettered message, with its error details wherever Symphony put them: in the
/// envelope's `meta.error`, or (for a body that is no envelope) in message attributes.
#[derive(Debug, Clone, Default)]
pub struct DeadLetter {
    pub body: String,
    pub kind: String,
    pub reason: String,
    pub attempts: u32,
    pub source_queue: Option<String>,
}

/// The messages of a dead-letter queue (at most ten), left on the queue.
pub async fn dead_letters(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<DeadLetter> {
    receive_dead_letters(sqs, queue_url, 0).await
}

/// Every message of a dead-letter queue; they stay hidden for a minute after.
pub async fn all_dead_letters(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<DeadLetter> {
    let mut all = Vec::new();
    loop {
        let batch = receive_dead_letters(sqs, queue_url, 60).await;
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

async fn receive_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    hide_seconds: i32,
) -> Vec<DeadLetter> {
    let output = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .visibility_timeout(hide_seconds)
        .send()
        .await
        .expect("ReceiveMessage failed");
    output
        .messages()
        .iter()
        .map(|message| {
            let letter = symphony_aws::DeadLetter::from_message(message);
            match letter.error {
                Some(error) => DeadLetter {
                    body: letter.body,
                    kind: error.kind.as_str().to_owned(),
                    reason: error.reason,
                    attempts: error.attempts,
                    source_queue: error.source_queue,
                },
                // Moved by SQS after maxReceiveCount: no details.
                None => DeadLetter {
                    body: letter.body,
                    ..DeadLetter::default()
                },
            }
        })
        .collect()
}
