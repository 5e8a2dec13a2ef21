//! Drip sequences and enrollments, as stored in DynamoDB (see `docs/data-model.md`).

use std::collections::BTreeMap;

use chrono_tz::Tz;
use symphony_core::ledger::{LedgerRecord, Progress, StatusNames, UnitState};
use symphony_core::{Envelope, EnvelopeError, Route};

use super::message::SmsDripMessage;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsStep {
    /// A `{{ name }}` template over the enrollment's fields.
    pub body: String,
    /// Sent this long after the previous step.
    pub delay_hours: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub sequence_id: String,
    pub user_id: String,
    pub steps: Vec<SmsStep>,
}

stored_names! {
    pub enum EnrollmentStatus ("enrollment status") {
        /// Waiting for its next step.
        Active => "active",
        /// Owned by one path while its step is being sent.
        Claimed => "claimed",
        /// One delivery is handing the step to SNS right now; a failed send goes back to claimed.
        Sending => "sending",
        OptedOut => "opted_out",
        Finished => "finished",
        /// Given up on; `lastError` says why.
        Failed => "failed",
        /// The step was handed to SNS and no answer came: it may be out. Out of every tick's
        /// and worker's reach; an operator decides. `lastError` holds the evidence.
        Unknown => "unknown",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub enrollment_id: String,
    pub sequence_id: String,
    pub user_id: String,
    pub phone: String,
    pub time_zone: Tz,
    pub fields: BTreeMap<String, String>,
    pub current_step: usize,
    /// Epoch seconds when the current step is due.
    pub next_send_at: i64,
    pub status: EnrollmentStatus,
    /// The path of its last claim.
    pub claimed_by: Option<Route>,
    /// Why it failed, or the evidence it is held on.
    pub last_error: Option<String>,
}

impl EnrollmentStatus {
    /// The lifecycle's state of this status.
    pub fn state(self) -> UnitState {
        match self {
            Self::Active => UnitState::Ready,
            Self::Claimed => UnitState::Claimed,
            Self::Sending => UnitState::Sending,
            Self::OptedOut => UnitState::Stopped,
            Self::Finished => UnitState::Done,
            Self::Failed => UnitState::Failed,
            Self::Unknown => UnitState::Unknown,
        }
    }

    pub fn of_state(state: UnitState) -> Self {
        match state {
            UnitState::Ready => Self::Active,
            UnitState::Claimed => Self::Claimed,
            UnitState::Sending => Self::Sending,
            UnitState::Stopped => Self::OptedOut,
            UnitState::Done => Self::Finished,
            UnitState::Failed => Self::Failed,
            UnitState::Unknown => Self::Unknown,
        }
    }
}

impl LedgerRecord for Enrollment {
    const KIND: &'static str = "enrollment";
    const STATUS: StatusNames = StatusNames {
        ready: EnrollmentStatus::Active.as_str(),
        done: EnrollmentStatus::Finished.as_str(),
        stopped: Some(EnrollmentStatus::OptedOut.as_str()),
    };
    const HAS_STEPS: bool = true;

    fn unit_id(&self) -> &str {
        &self.enrollment_id
    }

    fn progress(&self) -> Progress {
        Progress {
            state: self.status.state(),
            step: self.current_step,
            due_at: self.next_send_at,
            claimed_by: self.claimed_by,
            last_error: self.last_error.clone(),
        }
    }

    fn set_progress(&mut self, progress: Progress) {
        self.status = EnrollmentStatus::of_state(progress.state);
        self.current_step = progress.step;
        self.next_send_at = progress.due_at;
        self.claimed_by = progress.claimed_by;
        self.last_error = progress.last_error;
    }

    fn envelope(&self, source: &str) -> Result<Envelope, EnvelopeError> {
        let message = SmsDripMessage {
            enrollment_id: self.enrollment_id.clone(),
            sequence_id: self.sequence_id.clone(),
            user_id: self.user_id.clone(),
            to_phone: self.phone.clone(),
            step: self.current_step,
        };
        Envelope::wrap(&message, source, Some(self.enrollment_id.clone()))
    }
}
