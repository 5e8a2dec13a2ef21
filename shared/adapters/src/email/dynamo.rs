//! DynamoDB adapters of the email job: the emails table (the lifecycle's ledger, with this
//! job's layout and item mapping) and the mailboxes table.
//! Layout: `docs/data-model.md`.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use symphony_aws::{DynamoLedger, LedgerLayout};

use symphony_aws::table::{
    Item, Table, key, n, read_n, read_optional_n, read_optional_s, read_route, read_s, s,
};
use symphony_core::StoreError;
use symphony_jobs::email::message::EmailMessage;
use symphony_jobs::email::model::{EmailRecord, Mailbox, SmtpSecurity};
use symphony_jobs::email::ports::MailboxStore;

/// The index of queued emails by due time.
pub const DUE_INDEX: &str = "byStatusDueAt";

/// Where the emails table keeps the lifecycle.
pub const LAYOUT: LedgerLayout = LedgerLayout {
    key: "emailId",
    due_index: DUE_INDEX,
    due_attribute: "dueAt",
    step_attribute: None,
    done_at: "sentAt",
};

/// The emails table, as the lifecycle's ledger.
pub fn email_ledger(client: Client, table: impl Into<String>) -> DynamoLedger<EmailRecord> {
    DynamoLedger::new(client, table, LAYOUT, email_from_item, email_to_item)
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
            from_name: read_optional_s(item, "fromName")?,
            from_email: read_optional_s(item, "fromEmail")?,
        },
        status: read_s(item, "status")?.parse()?,
        due_at: read_n(item, "dueAt")?,
        claimed_by: read_route(item)?,
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
        ("status".to_owned(), s(email.status.as_str())),
        ("dueAt".to_owned(), n(email.due_at)),
    ]);
    for (name, value) in [
        ("fromName", &message.from_name),
        ("fromEmail", &message.from_email),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    if let Some(route) = email.claimed_by {
        item.insert("claimedBy".to_owned(), s(&route.to_string()));
    }
    if let Some(error) = &email.last_error {
        item.insert("lastError".to_owned(), s(error));
    }
    item
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
        daily_limit: read_optional_n(item, "dailyLimit")?
            .map(|limit| {
                u32::try_from(limit).map_err(|_| format!("dailyLimit {limit} is out of range"))
            })
            .transpose()?,
        from_name: read_optional_s(item, "fromName")?
            .filter(|name| !name.trim().is_empty())
            .map(|name| {
                if name.contains(['\r', '\n']) {
                    Err("fromName contains a line break".to_owned())
                } else {
                    Ok(name)
                }
            })
            .transpose()?,
        from_email: read_optional_s(item, "fromEmail")?
            .filter(|address| !address.trim().is_empty())
            .map(|address| match address.parse::<lettre::Address>() {
                Ok(_) => Ok(address),
                Err(_) => Err("fromEmail is not a valid email address".to_owned()),
            })
            .transpose()?,
    })
}

#[async_trait]
impl MailboxStore for DynamoMailboxStore {
    async fn get(&self, mailbox_id: &str) -> Result<Option<Mailbox>, StoreError> {
        let key = key(&[("mailboxId", mailbox_id)]);
        self.table.get(key, mailbox_from_item).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphony_core::Route;
    use symphony_jobs::email::EmailStatus;

    fn record() -> EmailRecord {
        EmailRecord {
            message: EmailMessage {
                email_id: "em-1".into(),
                user_id: "u".into(),
                mailbox_id: "mb".into(),
                to_email: "a@example.com".into(),
                subject: "s".into(),
                html: "<p/>".into(),
                from_name: Some("n".into()),
                from_email: Some("f@example.com".into()),
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

    #[test]
    fn an_email_without_a_sender_round_trips_without_one() {
        let mut record = record();
        record.message.from_name = None;
        record.message.from_email = None;
        let item = email_to_item(&record);
        assert!(!item.contains_key("fromEmail") && !item.contains_key("fromName"));
        assert_eq!(email_from_item(&item).unwrap(), record);
    }

    #[test]
    fn a_mailboxs_sender_is_checked_when_the_row_is_read() {
        let item = |from_name: &str, from_email: &str| {
            Item::from([
                ("mailboxId".to_owned(), s("mb")),
                ("userId".to_owned(), s("u")),
                ("smtpHost".to_owned(), s("127.0.0.1")),
                ("smtpPort".to_owned(), n(25)),
                ("smtpSecurity".to_owned(), s("none")),
                ("fromName".to_owned(), s(from_name)),
                ("fromEmail".to_owned(), s(from_email)),
            ])
        };
        let good = mailbox_from_item(&item("Acme", "hello@acme.example")).unwrap();
        assert_eq!(good.from_email.as_deref(), Some("hello@acme.example"));
        let blank = mailbox_from_item(&item(" ", "")).unwrap();
        assert_eq!((blank.from_name, blank.from_email), (None, None));
        let bad_address = mailbox_from_item(&item("Acme", "not-an-address")).unwrap_err();
        assert!(bad_address.contains("fromEmail"), "{bad_address}");
        let injected = mailbox_from_item(&item("Acme\r\nBcc: x@y.z", "hello@acme.example"));
        assert!(injected.unwrap_err().contains("fromName"));
    }
}
