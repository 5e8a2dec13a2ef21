//! The email queue's work source: queued emails that are due, claimed one by one in the
//! emails table. The tick itself is Symphony's generic [`Tick`].

use std::sync::Arc;

use async_trait::async_trait;
use symphony_core::{Claim, Envelope, EnvelopeError, Route, Tick, WorkError, WorkSource};

use super::EMAIL_FLAG;
use super::model::EmailRecord;
use super::ports::EmailStore;

/// The function name recorded as each envelope's source.
pub const SOURCE: &str = "process-email-queue";

/// `process-email-queue`'s tick.
pub type EmailTick = Tick<EmailWork>;

pub struct EmailWork {
    emails: Arc<dyn EmailStore>,
}

impl std::fmt::Debug for EmailWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailWork").finish_non_exhaustive()
    }
}

impl EmailWork {
    pub fn new(emails: Arc<dyn EmailStore>) -> Self {
        Self { emails }
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

    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Vec<EmailRecord>, WorkError> {
        self.emails
            .fetch_due(now, limit)
            .await
            .map_err(|e| WorkError::from_source("fetching due emails", e))
    }

    async fn claim(
        &self,
        email: &EmailRecord,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, WorkError> {
        self.emails
            .claim(&email.message.email_id, route, now)
            .await
            .map_err(|e| WorkError::from_source("claiming an email", e))
    }

    async fn release(&self, claim: &Claim) -> Result<(), WorkError> {
        self.emails
            .release(claim)
            .await
            .map(drop)
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
