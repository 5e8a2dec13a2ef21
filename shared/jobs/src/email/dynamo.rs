//! DynamoDB adapters of the email job: the emails table and the mailboxes table.
//! Layout: `docs/data-model.md`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use symphony_core::{Claim, Due, Route};

use super::message::EmailMessage;
use super::model::{EmailRecord, EmailStatus, Mailbox, SmtpSecurity};
use super::ports::{EmailStore, MailboxStore};
use crate::store::{
    Item, MAX_ERROR_BYTES, StoreError, Table, Transition, n, read_n, read_optional_s, read_s, s,
    truncate,
};

/// The index of queued emails by due time.
pub const DUE_INDEX: &str = "byStatusDueAt";

#[derive(Debug, Clone)]
pub struct DynamoEmailStore {
    table: Table,
}

impl DynamoEmailStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }

    async fn transition(
        &self,
        email_id: &str,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Transition, StoreError> {
        let key = crate::store::key(&[("emailId", email_id)]);
        self.table.update(key, update, condition, values).await
    }

    /// Claims the record for `route` when `condition` holds.
    async fn take(
        &self,
        email_id: &str,
        route: Route,
        now: i64,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<Claim>, StoreError> {
        let key = crate::store::key(&[("emailId", email_id)]);
        self.table
            .take_claim(key, email_id, route, now, condition, values)
            .await
    }
}

/// Reads an emails-table item. Every problem names the attribute.
pub fn email_from_item(item: &Item) -> Result<EmailRecord, String> {
    Ok(EmailRecord {
        message: EmailMessage {
            email_id: read_s(item, "emailId")?,
            user_id: read_s(item, "userId")?,
            mailbox_id: read_s(item, "mailboxId")?,
            to_email: read_s(item, "toEmail")?,
            subject: read_s(item, "subject")?,
            html: read_s(item, "html")?,
            from_name: read_optional_s(item, "fromName")?.unwrap_or_default(),
            from_email: read_s(item, "fromEmail")?,
        },
        status: read_s(item, "status")?.parse()?,
        due_at: read_n(item, "dueAt")?,
        claimed_by: match read_optional_s(item, "claimedBy")?.as_deref() {
            Some("symphony") => Some(Route::Symphony),
            Some("legacy") => Some(Route::Legacy),
            Some(other) => {
                return Err(format!(
                    "claimedBy must be symphony or legacy, found {other:?}"
                ));
            }
            None => None,
        },
        last_error: read_optional_s(item, "lastError")?,
    })
}

/// Writes an emails-table item (the web app's side of the contract; used by seeding).
pub fn email_to_item(email: &EmailRecord) -> Item {
    let message = &email.message;
    let mut item = Item::from([
        ("emailId".to_owned(), s(&message.email_id)),
        ("userId".to_owned(), s(&message.user_id)),
        ("mailboxId".to_owned(), s(&message.mailbox_id)),
        ("toEmail".to_owned(), s(&message.to_email)),
        ("subject".to_owned(), s(&message.subject)),
        ("html".to_owned(), s(&message.html)),
        ("fromName".to_owned(), s(&message.from_name)),
        ("fromEmail".to_owned(), s(&message.from_email)),
        ("status".to_owned(), s(email.status.as_str())),
        ("dueAt".to_owned(), n(email.due_at)),
    ]);
    if let Some(route) = email.claimed_by {
        item.insert("claimedBy".to_owned(), s(&route.to_string()));
    }
    if let Some(error) = &email.last_error {
        item.insert("lastError".to_owned(), s(error));
    }
    item
}

#[async_trait]
impl EmailStore for DynamoEmailStore {
    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<EmailRecord>, StoreError> {
        let page = i32::try_from(limit).unwrap_or(i32::MAX);
        self.table
            .query_quarantining(
                limit,
                email_from_item,
                |query| {
                    query
                        .index_name(DUE_INDEX)
                        .key_condition_expression("#status = :queued AND dueAt <= :now")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":queued", s(EmailStatus::Queued.as_str()))
                        .expression_attribute_values(":now", n(now))
                        .limit(page)
                },
                &["emailId"],
                now,
            )
            .await
    }

    async fn fetch_abandoned(
        &self,
        claimed_before: i64,
        limit: usize,
        now: i64,
    ) -> Result<Due<EmailRecord>, StoreError> {
        self.table
            .abandoned_claims(
                DUE_INDEX,
                claimed_before,
                limit,
                email_from_item,
                &["emailId"],
                now,
            )
            .await
    }

    async fn reclaim(
        &self,
        email_id: &str,
        route: Route,
        now: i64,
        claimed_before: i64,
    ) -> Result<Option<Claim>, StoreError> {
        let key = crate::store::key(&[("emailId", email_id)]);
        self.table
            .take_abandoned_claim(key, email_id, route, now, claimed_before)
            .await
    }

    async fn get(&self, email_id: &str) -> Result<Option<EmailRecord>, StoreError> {
        let key = crate::store::key(&[("emailId", email_id)]);
        self.table.get(key, email_from_item).await
    }

    async fn create(&self, email: &EmailRecord) -> Result<Transition, StoreError> {
        self.table.create("emailId", email_to_item(email)).await
    }

    async fn claim(
        &self,
        email_id: &str,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, StoreError> {
        self.take(
            email_id,
            route,
            now,
            "#status = :queued",
            vec![(":queued", s(EmailStatus::Queued.as_str()))],
        )
        .await
    }

    async fn release(&self, claim: &Claim) -> Result<Transition, StoreError> {
        self.transition(
            &claim.unit_id,
            "SET #status = :queued REMOVE claimToken, claimedAt, claimedBy",
            "#status = :claimed AND claimToken = :token",
            vec![
                (":claimed", s(EmailStatus::Claimed.as_str())),
                (":queued", s(EmailStatus::Queued.as_str())),
                (":token", s(&claim.token)),
            ],
        )
        .await
    }

    async fn begin_send(&self, email_id: &str, now: i64) -> Result<Transition, StoreError> {
        self.transition(
            email_id,
            "SET #status = :sending, sendingSince = :now",
            "#status = :claimed",
            vec![
                (":claimed", s(EmailStatus::Claimed.as_str())),
                (":sending", s(EmailStatus::Sending.as_str())),
                (":now", n(now)),
            ],
        )
        .await
    }

    async fn abort_send(&self, email_id: &str) -> Result<Transition, StoreError> {
        self.transition(
            email_id,
            "SET #status = :claimed REMOVE sendingSince",
            "#status = :sending",
            vec![
                (":claimed", s(EmailStatus::Claimed.as_str())),
                (":sending", s(EmailStatus::Sending.as_str())),
            ],
        )
        .await
    }

    async fn hold_unknown(
        &self,
        email_id: &str,
        evidence: &str,
        now: i64,
    ) -> Result<Transition, StoreError> {
        self.transition(
            email_id,
            "SET #status = :unknown, heldAt = :now, lastError = :evidence",
            "#status = :sending",
            vec![
                (":sending", s(EmailStatus::Sending.as_str())),
                (":unknown", s(EmailStatus::Unknown.as_str())),
                (":now", n(now)),
                (":evidence", s(truncate(evidence, MAX_ERROR_BYTES))),
            ],
        )
        .await
    }

    async fn mark_sent(&self, email_id: &str, now: i64) -> Result<Transition, StoreError> {
        self.transition(
            email_id,
            "SET #status = :sent, sentAt = :now",
            "#status = :sending",
            vec![
                (":sending", s(EmailStatus::Sending.as_str())),
                (":sent", s(EmailStatus::Sent.as_str())),
                (":now", n(now)),
            ],
        )
        .await
    }

    async fn mark_failed(
        &self,
        email_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<Transition, StoreError> {
        self.transition(
            email_id,
            "SET #status = :failed, failedAt = :now, lastError = :reason",
            "#status IN (:claimed, :sending)",
            vec![
                (":claimed", s(EmailStatus::Claimed.as_str())),
                (":sending", s(EmailStatus::Sending.as_str())),
                (":failed", s(EmailStatus::Failed.as_str())),
                (":now", n(now)),
                (":reason", s(truncate(reason, MAX_ERROR_BYTES))),
            ],
        )
        .await
    }
}

#[derive(Debug, Clone)]
pub struct DynamoMailboxStore {
    table: Table,
}

impl DynamoMailboxStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, table),
        }
    }
}

/// Reads a mailboxes-table item. Every problem names the attribute.
pub fn mailbox_from_item(item: &Item) -> Result<Mailbox, String> {
    let port = read_n(item, "smtpPort")?;
    Ok(Mailbox {
        mailbox_id: read_s(item, "mailboxId")?,
        user_id: read_s(item, "userId")?,
        smtp_host: read_s(item, "smtpHost")?,
        smtp_port: u16::try_from(port)
            .map_err(|_| format!("smtpPort {port} is not a port number"))?,
        smtp_security: read_s(item, "smtpSecurity")?.parse::<SmtpSecurity>()?,
        smtp_username: read_optional_s(item, "smtpUsername")?,
        smtp_password: read_optional_s(item, "smtpPasswordRef")?
            .map(|reference| reference.parse())
            .transpose()?,
        daily_limit: crate::store::read_optional_n(item, "dailyLimit")?
            .map(|limit| {
                u32::try_from(limit).map_err(|_| format!("dailyLimit {limit} is out of range"))
            })
            .transpose()?,
    })
}

#[async_trait]
impl MailboxStore for DynamoMailboxStore {
    async fn get(&self, mailbox_id: &str) -> Result<Option<Mailbox>, StoreError> {
        let key = crate::store::key(&[("mailboxId", mailbox_id)]);
        self.table.get(key, mailbox_from_item).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EmailRecord {
        EmailRecord {
            message: EmailMessage {
                email_id: "em-1".into(),
                user_id: "u".into(),
                mailbox_id: "mb".into(),
                to_email: "a@example.com".into(),
                subject: "s".into(),
                html: "<p/>".into(),
                from_name: "n".into(),
                from_email: "f@example.com".into(),
            },
            status: EmailStatus::Queued,
            due_at: 1_700_000_000,
            claimed_by: Some(Route::Legacy),
            last_error: None,
        }
    }

    #[test]
    fn an_email_round_trips_through_its_item() {
        assert_eq!(
            email_from_item(&email_to_item(&record())).unwrap(),
            record()
        );
    }

    #[test]
    fn a_bad_item_names_the_attribute() {
        let mut item = email_to_item(&record());
        item.insert("dueAt".into(), s("tomorrow"));
        assert!(email_from_item(&item).unwrap_err().contains("dueAt"));
        item.insert("dueAt".into(), n(1));
        item.insert("status".into(), s("lost"));
        assert!(email_from_item(&item).unwrap_err().contains("lost"));
    }
}
