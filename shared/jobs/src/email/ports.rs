//! What the email job needs from the outside world, as traits.

use async_trait::async_trait;
use symphony_core::{BoxError, Claim, Retryable, Route};

use super::model::{EmailRecord, Mailbox};

pub use crate::store::{StoreError, Transition};

/// Port: the emails table.
#[async_trait]
pub trait EmailStore: Send + Sync {
    /// Queued emails due at `now` (epoch seconds), oldest first, at most `limit`.
    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Vec<EmailRecord>, StoreError>;
    /// A consistent read of one email.
    async fn get(&self, email_id: &str) -> Result<Option<EmailRecord>, StoreError>;
    /// Creates an email; [`Transition::Conflict`] when one with its id exists already.
    async fn create(&self, email: &EmailRecord) -> Result<Transition, StoreError>;
    /// Moves a queued email to claimed, for one route. `None` when someone else has it.
    async fn claim(
        &self,
        email_id: &str,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, StoreError>;
    /// Emails left `claimed` since before `claimed_before` (their owner died), at most `limit`.
    async fn fetch_abandoned(
        &self,
        claimed_before: i64,
        limit: usize,
    ) -> Result<Vec<EmailRecord>, StoreError>;
    /// Takes over an abandoned claim: only while it is still `claimed` since before
    /// `claimed_before`. `None` when someone moved it meanwhile.
    async fn reclaim(
        &self,
        email_id: &str,
        route: Route,
        now: i64,
        claimed_before: i64,
    ) -> Result<Option<Claim>, StoreError>;
    /// Gives a claim back: the email is queued again, for a later tick.
    async fn release(&self, claim: &Claim) -> Result<Transition, StoreError>;
    /// Claimed → sending: the one delivery that may talk to the mail server.
    async fn begin_send(&self, email_id: &str, now: i64) -> Result<Transition, StoreError>;
    /// Sending → claimed, after a send that may be tried again.
    async fn abort_send(&self, email_id: &str) -> Result<Transition, StoreError>;
    /// Sending → sent.
    async fn mark_sent(&self, email_id: &str, now: i64) -> Result<Transition, StoreError>;
    /// Claimed or sending → failed, with the reason (bounded in size by the adapter).
    async fn mark_failed(
        &self,
        email_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<Transition, StoreError>;
}

/// Port: the mailboxes table.
#[async_trait]
pub trait MailboxStore: Send + Sync {
    async fn get(&self, mailbox_id: &str) -> Result<Option<Mailbox>, StoreError>;
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
}

#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct MailError {
    pub reason: String,
    pub retryable: bool,
    #[source]
    pub source: Option<BoxError>,
}

impl MailError {
    pub fn permanent(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self {
            reason: reason.into(),
            retryable: false,
            source,
        }
    }

    pub fn retryable(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self {
            reason: reason.into(),
            retryable: true,
            source,
        }
    }
}

impl Retryable for MailError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// Port: sends one email through a mailbox.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mailbox: &Mailbox, email: &OutgoingEmail) -> Result<(), MailError>;
}
