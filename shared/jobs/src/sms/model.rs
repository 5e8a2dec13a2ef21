//! Drip sequences and enrollments, as stored in DynamoDB (see `docs/data-model.md`).

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono_tz::Tz;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentStatus {
    /// Waiting for its next step.
    Active,
    /// Owned by one path while its step is being sent.
    Claimed,
    /// One delivery is handing the step to SNS right now; a failed send goes back to claimed.
    Sending,
    OptedOut,
    Finished,
    /// Given up on; `lastError` says why.
    Failed,
    /// The step was handed to SNS and no answer came: it may be out. Out of every tick's
    /// and worker's reach; an operator decides. `lastError` holds the evidence.
    Unknown,
}

impl EnrollmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Claimed => "claimed",
            Self::Sending => "sending",
            Self::OptedOut => "opted_out",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

impl FromStr for EnrollmentStatus {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "active" => Ok(Self::Active),
            "claimed" => Ok(Self::Claimed),
            "sending" => Ok(Self::Sending),
            "opted_out" => Ok(Self::OptedOut),
            "finished" => Ok(Self::Finished),
            "failed" => Ok(Self::Failed),
            "unknown" => Ok(Self::Unknown),
            other => Err(format!("unknown enrollment status {other:?}")),
        }
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
}
