//! `process-sms-drip`'s work source: active enrollments whose next step is due.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use symphony_core::tick::lease_cutoff;
use symphony_core::{Claim, Due, Envelope, EnvelopeError, Route, Tick, WorkError, WorkSource};

use super::SMS_FLAG;
use super::message::SmsDripMessage;
use super::model::{Enrollment, EnrollmentStatus};
use super::ports::EnrollmentStore;

/// The function name recorded as each envelope's source.
pub const SOURCE: &str = "process-sms-drip";

pub type SmsTick = Tick<SmsWork>;

pub struct SmsWork {
    enrollments: Arc<dyn EnrollmentStore>,
    /// A claim older than this is taken to be abandoned (its owner died) and is taken over.
    lease: Duration,
}

impl std::fmt::Debug for SmsWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsWork").finish_non_exhaustive()
    }
}

impl SmsWork {
    pub fn new(enrollments: Arc<dyn EnrollmentStore>, lease: Duration) -> Self {
        Self { enrollments, lease }
    }
}

#[async_trait]
impl WorkSource for SmsWork {
    type Unit = Enrollment;

    fn flag(&self) -> &'static str {
        SMS_FLAG
    }

    fn unit_id(&self, enrollment: &Enrollment) -> String {
        enrollment.enrollment_id.clone()
    }

    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<Enrollment>, WorkError> {
        self.enrollments
            .fetch_due(now, limit)
            .await
            .map_err(|e| WorkError::from_source("fetching due enrollments", e))
    }

    /// Claims older than the lease.
    async fn fetch_abandoned(&self, now: i64, limit: usize) -> Result<Due<Enrollment>, WorkError> {
        self.enrollments
            .fetch_abandoned(lease_cutoff(now, self.lease), limit, now)
            .await
            .map_err(|e| WorkError::from_source("fetching abandoned claims", e))
    }

    async fn claim(
        &self,
        enrollment: &Enrollment,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, WorkError> {
        let id = &enrollment.enrollment_id;
        let claim = match enrollment.status {
            // Taken over only while still abandoned; `sending` is never taken over.
            EnrollmentStatus::Claimed => {
                self.enrollments
                    .reclaim(id, route, now, lease_cutoff(now, self.lease))
                    .await
            }
            _ => {
                self.enrollments
                    .claim(id, enrollment.current_step, route, now)
                    .await
            }
        };
        claim.map_err(|e| WorkError::from_source("claiming an enrollment", e))
    }

    async fn release(&self, claim: &Claim) -> Result<bool, WorkError> {
        self.enrollments
            .release(claim, chrono::Utc::now().timestamp())
            .await
            .map(|done| done == crate::store::Transition::Done)
            .map_err(|e| WorkError::from_source("releasing an enrollment", e))
    }

    async fn mark_failed(&self, claim: &Claim, reason: &str, _: i64) -> Result<(), WorkError> {
        self.enrollments
            .fail(&claim.unit_id, reason)
            .await
            .map(drop)
            .map_err(|e| WorkError::from_source("marking an enrollment failed", e))
    }

    fn envelope(&self, enrollment: &Enrollment, source: &str) -> Result<Envelope, EnvelopeError> {
        let message = SmsDripMessage {
            enrollment_id: enrollment.enrollment_id.clone(),
            sequence_id: enrollment.sequence_id.clone(),
            user_id: enrollment.user_id.clone(),
            to_phone: enrollment.phone.clone(),
            step: enrollment.current_step,
        };
        Envelope::wrap(&message, source, Some(enrollment.enrollment_id.clone()))
    }
}
