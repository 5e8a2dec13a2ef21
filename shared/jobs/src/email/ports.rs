//! What the email job needs from the outside world, as traits. The emails table is the
//! lifecycle's ledger ([`symphony_core::Ledger`] of [`super::EmailRecord`]).

use async_trait::async_trait;
use std::time::{Duration, Instant};

use symphony_core::{BoxError, FailureKind, Retryable};

use super::model::Mailbox;

pub use symphony_core::ledger::{StoreError, Transition};

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
