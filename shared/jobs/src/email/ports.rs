//! What the email job needs from the outside world, as traits. The emails table is the
//! lifecycle's ledger ([`symphony_core::Ledger`] of [`super::EmailRecord`]).

use async_trait::async_trait;
use std::time::{Duration, Instant};

use symphony_core::HandlerError;

use super::model::Mailbox;

pub use symphony_core::ledger::{StoreError, Transition};

/// Port: the mailboxes table.
#[async_trait]
pub trait MailboxStore: Send + Sync {
    async fn get(&self, mailbox_id: &str) -> Result<Option<Mailbox>, StoreError>;

    /// Drops whatever is kept of the mailbox (a cache's copy), so the next `get` reads
    /// the table: called when its server refused the account, in case the row was fixed.
    fn forget(&self, _mailbox_id: &str) {}
}

/// An email ready to go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub email_id: String,
    pub from_name: String,
    pub from_email: String,
    pub to_email: String,
    pub subject: String,
    pub html: String,
    /// The sender is the mailbox's (`fromName`, `fromEmail` of its row), not the
    /// email's: a server refusing it would refuse every email of the mailbox alike.
    pub sender_is_mailboxs: bool,
}

/// Port: sends one email through a mailbox.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// The least time a send needs, to the verdict and its record: a handler with less
    /// left before its deadline does not start it (nothing handed over, a later try).
    fn least_time(&self) -> Duration {
        Duration::ZERO
    }

    /// Sends `email`; `deadline` is when the invocation ends, if it does: the wait for
    /// the server's verdict never runs past it, and no send starts that cannot finish.
    async fn send(
        &self,
        mailbox: &Mailbox,
        email: &OutgoingEmail,
        deadline: Option<Instant>,
    ) -> Result<(), HandlerError>;
}
