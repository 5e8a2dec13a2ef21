//! The email job's records, as stored in DynamoDB (see `docs/data-model.md`).

use std::str::FromStr;

use symphony_core::ledger::{LedgerRecord, Progress, StatusNames, UnitState};
use symphony_core::{Envelope, EnvelopeError, Route};

use super::message::EmailMessage;
use crate::secrets::SecretRef;

stored_names! {
    /// Where an email is in its life: `queued` → `claimed` → `sending` → `sent`, or `failed`,
    /// or `unknown` when a send's outcome could not be known.
    pub enum EmailStatus ("email status") {
        /// Due work, waiting for a tick.
        Queued => "queued",
        /// Owned by one path (symphony or legacy) until it is sent or released.
        Claimed => "claimed",
        /// One delivery is talking to the mail server right now. Only one can: the move from
        /// `claimed` is conditional. A send that fails goes back to `claimed`.
        Sending => "sending",
        Sent => "sent",
        /// Given up on; `lastError` says why.
        Failed => "failed",
        /// The data went to the mail server and no verdict came back: the mail may be out.
        /// Out of every tick's and worker's reach; an operator decides (mark sent, or send
        /// again). `lastError` holds the evidence.
        Unknown => "unknown",
    }
}

/// One row of the emails table: the message to send, and where it is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRecord {
    pub message: EmailMessage,
    pub status: EmailStatus,
    /// Epoch seconds at which the email becomes due.
    pub due_at: i64,
    pub claimed_by: Option<Route>,
    pub last_error: Option<String>,
}

impl EmailStatus {
    /// The lifecycle's state of this status.
    pub fn state(self) -> UnitState {
        match self {
            Self::Queued => UnitState::Ready,
            Self::Claimed => UnitState::Claimed,
            Self::Sending => UnitState::Sending,
            Self::Sent => UnitState::Done,
            Self::Failed => UnitState::Failed,
            Self::Unknown => UnitState::Unknown,
        }
    }

    /// The status of a lifecycle state; `None` for one an email never reaches (stopped).
    pub fn of_state(state: UnitState) -> Option<Self> {
        match state {
            UnitState::Ready => Some(Self::Queued),
            UnitState::Claimed => Some(Self::Claimed),
            UnitState::Sending => Some(Self::Sending),
            UnitState::Done => Some(Self::Sent),
            UnitState::Failed => Some(Self::Failed),
            UnitState::Unknown => Some(Self::Unknown),
            UnitState::Stopped => None,
        }
    }
}

impl LedgerRecord for EmailRecord {
    const KIND: &'static str = "email";
    const STATUS: StatusNames = StatusNames {
        ready: EmailStatus::Queued.as_str(),
        done: EmailStatus::Sent.as_str(),
        stopped: None,
    };
    const HAS_STEPS: bool = false;

    fn unit_id(&self) -> &str {
        &self.message.email_id
    }

    fn progress(&self) -> Progress {
        Progress {
            state: self.status.state(),
            step: 0,
            due_at: self.due_at,
            claimed_by: self.claimed_by,
            last_error: self.last_error.clone(),
        }
    }

    fn set_progress(&mut self, progress: Progress) {
        if let Some(status) = EmailStatus::of_state(progress.state) {
            self.status = status;
        }
        self.due_at = progress.due_at;
        self.claimed_by = progress.claimed_by;
        self.last_error = progress.last_error;
    }

    fn envelope(&self, source: &str) -> Result<Envelope, EnvelopeError> {
        Envelope::wrap(&self.message, source, Some(self.message.email_id.clone()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmtpSecurity {
    /// Implicit TLS, usually port 465.
    Tls,
    /// Plain connection upgraded with STARTTLS, usually port 587. Required, not opportunistic.
    StartTls,
    /// No encryption: only for a server on loopback in tests and local runs.
    None,
}

impl FromStr for SmtpSecurity {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "tls" => Ok(Self::Tls),
            "starttls" => Ok(Self::StartTls),
            "none" => Ok(Self::None),
            other => Err(format!(
                "smtpSecurity must be tls, starttls or none, found {other:?}"
            )),
        }
    }
}

/// One row of the mailboxes table: the sending account. Credentials are a reference
/// to a secret, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    pub mailbox_id: String,
    pub user_id: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_security: SmtpSecurity,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<SecretRef>,
    /// At most this many campaign emails a day (UTC); none when absent.
    pub daily_limit: Option<u32>,
    /// The sender's name and address of an email that gives none.
    pub from_name: Option<String>,
    pub from_email: Option<String>,
}
