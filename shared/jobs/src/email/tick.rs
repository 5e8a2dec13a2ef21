//! The email queue's work source: queued emails that are due, claimed one by one in the
//! emails table. The tick itself is Symphony's generic [`Tick`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use symphony_core::tick::lease_cutoff;
use symphony_core::{Claim, Due, Envelope, EnvelopeError, Route, Tick, WorkError, WorkSource};

use super::EMAIL_FLAG;
use super::model::{EmailRecord, EmailStatus};
use super::ports::EmailStore;

/// The function name recorded as each envelope's source.
pub const SOURCE: &str = "process-email-queue";

/// `process-email-queue`'s tick.
pub type EmailTick = Tick<EmailWork>;

pub struct EmailWork {
    emails: Arc<dyn EmailStore>,
    /// A claim older than this is taken to be abandoned (its owner died) and is taken over.
    lease: Duration,
}

impl std::fmt::Debug for EmailWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailWork").finish_non_exhaustive()
    }
}

impl EmailWork {
    pub fn new(emails: Arc<dyn EmailStore>, lease: Duration) -> Self {
        Self { emails, lease }
    }
}

#[async_trait]
impl WorkSource for EmailWork {
    type Unit = EmailRecord;

    fn flag(&self) -> &'static str {
        EMAIL_FLAG
    }

    fn unit_id(&self, email: &EmailRecord) -> String {
        email.message.email_id.clone()
    }

    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<EmailRecord>, WorkError> {
        self.emails
            .fetch_due(now, limit)
            .await
            .map_err(|e| WorkError::from_source("fetching due emails", e))
    }

    /// Claims older than the lease.
    async fn fetch_abandoned(&self, now: i64, limit: usize) -> Result<Due<EmailRecord>, WorkError> {
        self.emails
            .fetch_abandoned(lease_cutoff(now, self.lease), limit, now)
            .await
            .map_err(|e| WorkError::from_source("fetching abandoned claims", e))
    }

    async fn claim(
        &self,
        email: &EmailRecord,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, WorkError> {
        let id = &email.message.email_id;
        let claim = match email.status {
            // Taken over only while still abandoned: a live owner's claim is never stolen,
            // and the `sending` step still lets one delivery alone send.
            EmailStatus::Claimed => {
                self.emails
                    .reclaim(id, route, now, lease_cutoff(now, self.lease))
                    .await
            }
            _ => self.emails.claim(id, route, now).await,
        };
        claim.map_err(|e| WorkError::from_source("claiming an email", e))
    }

    async fn release(&self, claim: &Claim) -> Result<bool, WorkError> {
        self.emails
            .release(claim)
            .await
            .map(|done| done == crate::store::Transition::Done)
            .map_err(|e| WorkError::from_source("releasing an email", e))
    }

    async fn mark_failed(&self, claim: &Claim, reason: &str, now: i64) -> Result<(), WorkError> {
        self.emails
            .mark_failed(&claim.unit_id, reason, now)
            .await
            .map(drop)
            .map_err(|e| WorkError::from_source("marking an email failed", e))
    }

    fn envelope(&self, email: &EmailRecord, source: &str) -> Result<Envelope, EnvelopeError> {
        Envelope::wrap(&email.message, source, Some(email.message.email_id.clone()))
    }
}
