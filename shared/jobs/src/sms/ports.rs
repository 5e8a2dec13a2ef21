//! What the SMS drip needs from the outside world, as traits.

use async_trait::async_trait;
use symphony_core::{BoxError, Claim, Due, FailureKind, Retryable, Route};

use super::model::{Enrollment, Sequence};
use crate::store::{StoreError, Transition};

/// Where an enrollment goes once its step is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentNext {
    Step { index: usize, send_at: i64 },
    Finished,
}

/// Port: the enrollments table.
#[async_trait]
pub trait EnrollmentStore: Send + Sync {
    /// Active enrollments due at `now`, oldest first, at most `limit`.
    /// Rows that do not parse (a bad time zone...) are quarantined and returned apart.
    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<Enrollment>, StoreError>;
    async fn get(&self, enrollment_id: &str) -> Result<Option<Enrollment>, StoreError>;
    /// Active → claimed, for the step it is at.
    async fn claim(
        &self,
        enrollment_id: &str,
        step: usize,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, StoreError>;
    /// Enrollments left `claimed` since before `claimed_before` (their owner died).
    /// Rows that do not parse are quarantined and returned apart.
    async fn fetch_abandoned(
        &self,
        claimed_before: i64,
        limit: usize,
        now: i64,
    ) -> Result<Due<Enrollment>, StoreError>;
    /// Takes over an abandoned claim, only while it is still `claimed` since before
    /// `claimed_before`.
    async fn reclaim(
        &self,
        enrollment_id: &str,
        route: Route,
        now: i64,
        claimed_before: i64,
    ) -> Result<Option<Claim>, StoreError>;
    /// Claimed by `claim` (its token) → active, due at `send_at`: a tick gives it back.
    async fn release(&self, claim: &Claim, send_at: i64) -> Result<Transition, StoreError>;
    /// Claimed → active, due at `send_at` (a deferral past quiet hours).
    async fn reschedule(&self, enrollment_id: &str, send_at: i64)
    -> Result<Transition, StoreError>;
    /// Claimed at `step` → sending: the one delivery that may hand the step to SNS.
    async fn begin_send(&self, enrollment_id: &str, step: usize) -> Result<Transition, StoreError>;
    /// Sending → claimed, after a send that may be tried again.
    async fn abort_send(&self, enrollment_id: &str) -> Result<Transition, StoreError>;
    /// Sending at step `from` → the next step or finished.
    async fn advance(
        &self,
        enrollment_id: &str,
        from: usize,
        next: EnrollmentNext,
    ) -> Result<Transition, StoreError>;
    /// Sending → unknown, with the evidence: the text may be out, so no one may send the
    /// step again without a person's decision.
    async fn hold_unknown(
        &self,
        enrollment_id: &str,
        evidence: &str,
    ) -> Result<Transition, StoreError>;
    /// Claimed at step `at` → finished: the sequence has no such step (it was shortened).
    async fn finish_past_end(
        &self,
        enrollment_id: &str,
        at: usize,
    ) -> Result<Transition, StoreError>;
    /// Claimed → opted out.
    async fn opt_out(&self, enrollment_id: &str) -> Result<Transition, StoreError>;
    /// Active, claimed or sending → failed, with the reason.
    async fn fail(&self, enrollment_id: &str, reason: &str) -> Result<Transition, StoreError>;
}

/// Port: the sequences table.
#[async_trait]
pub trait SequenceStore: Send + Sync {
    async fn get(&self, sequence_id: &str) -> Result<Option<Sequence>, StoreError>;
}

/// Port: numbers that asked not to be texted.
#[async_trait]
pub trait OptOuts: Send + Sync {
    async fn is_opted_out(&self, phone: &str) -> Result<bool, StoreError>;
}

#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct SmsError {
    pub reason: String,
    pub kind: FailureKind,
    #[source]
    pub source: Option<BoxError>,
}

impl Retryable for SmsError {
    fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    fn failure_kind(&self) -> FailureKind {
        self.kind
    }
}

/// Port: sends one text message.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// The least time a send needs, to the answer and its record: a handler with less
    /// left before its deadline does not start it.
    fn least_time(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Returns the provider's message id.
    async fn send(&self, phone: &str, body: &str) -> Result<String, SmsError>;
}
