//! What the email job needs from the outside world, as traits.

use async_trait::async_trait;
use std::time::{Duration, Instant};

use symphony_core::{BoxError, Claim, Due, FailureKind, Retryable, Route};

use super::model::{EmailRecord, Mailbox};

pub use crate::store::{StoreError, Transition};

/// Port: the emails table.
#[async_trait]
pub trait EmailStore: Send + Sync {
    /// Queued emails due at `now` (epoch seconds), oldest first, at most `limit`; rows
    /// that do not parse are quarantined and returned apart.
    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<EmailRecord>, StoreError>;
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
    /// Rows that do not parse are quarantined and returned apart.
    async fn fetch_abandoned(
        &self,
        claimed_before: i64,
        limit: usize,
        now: i64,
    ) -> Result<Due<EmailRecord>, StoreError>;
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
    /// Sending → unknown, with the evidence: the send may have gone out, so no one may
    /// send it again without a person's decision.
    async fn hold_unknown(
        &self,
        email_id: &str,
        evidence: &str,
        now: i64,
    ) -> Result<Transition, StoreError>;
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
    pub kind: FailureKind,
    #[source]
    pub source: Option<BoxError>,
}

impl MailError {
    pub fn new(kind: FailureKind, reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self {
            reason: reason.into(),
            kind,
            source,
        }
    }

    /// The email's own fault (a bad address, a 5xx rejection): it fails.
    pub fn permanent(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::new(FailureKind::Intrinsic, reason, source)
    }

    /// Nothing was handed over and the server may take it later (a 4xx, a timeout
    /// before the data's final dot).
    pub fn retryable(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::new(FailureKind::Transient, reason, source)
    }

    /// Not the email's fault and nothing handed over (a secret that cannot be read).
    pub fn infrastructure(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::new(FailureKind::Infrastructure, reason, source)
    }

    /// The data's final dot was written and no verdict came back: the mail may be out.
    pub fn unknown_outcome(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::new(FailureKind::UnknownOutcome, reason, source)
    }
}

impl Retryable for MailError {
    fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    fn failure_kind(&self) -> FailureKind {
        self.kind
    }
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
    ) -> Result<(), MailError>;
}
