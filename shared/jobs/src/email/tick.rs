//! One tick of `process-email-queue`: what the old cron route did, with a choice of path
//! per email and a claim on each before it goes anywhere.

use std::sync::Arc;

use chrono::Utc;
use futures::{StreamExt, stream};
use serde::Serialize;
use symphony_core::flags::FlagEvaluation;
use symphony_core::{Delivery, Dispatcher, Envelope, FlagReader, Retryable, Route, TransportError};
use tracing::{error, info, warn};

use super::EMAIL_FLAG;
use super::model::{Claim, EmailRecord};
use super::ports::{EmailStore, StoreError};

/// Claims made at once against the table.
const CLAIM_CONCURRENCY: usize = 16;

/// What a tick did; the scheduled function's response.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickReport {
    /// Due emails found (at most the per-tick cap).
    pub due: usize,
    /// Put on the queue (the symphony path).
    pub dispatched: usize,
    /// Sent inline (the legacy path).
    pub legacy: usize,
    /// Not sent this tick: released for the next tick, or marked failed.
    pub failed: usize,
    /// Claimed by another tick or worker first.
    pub skipped: usize,
    pub flags: FlagEvaluation,
    /// Per failed email: id and reason. Never addresses or bodies.
    pub failures: Vec<UnitFailure>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitFailure {
    pub email_id: String,
    pub route: Route,
    pub reason: String,
    /// True when the email was queued again for the next tick.
    pub released: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error("fetching due emails failed")]
    Fetch(#[source] StoreError),
}

impl Retryable for TickError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Fetch(error) => error.is_retryable(),
        }
    }
}

pub struct EmailTick {
    flags: FlagReader,
    emails: Arc<dyn EmailStore>,
    queue: Dispatcher,
    legacy: Dispatcher,
    limit: usize,
}

impl std::fmt::Debug for EmailTick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailTick")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The function name recorded as each envelope's source.
pub const SOURCE: &str = "process-email-queue";

impl EmailTick {
    pub fn new(
        flags: FlagReader,
        emails: Arc<dyn EmailStore>,
        queue: Dispatcher,
        legacy: Dispatcher,
        limit: usize,
    ) -> Self {
        Self {
            flags,
            emails,
            queue,
            legacy,
            limit,
        }
    }

    pub async fn run(&self) -> Result<TickReport, TickError> {
        let flags = self.flags.evaluate(EMAIL_FLAG).await;
        let now = Utc::now().timestamp();
        let due = self
            .emails
            .fetch_due(now, self.limit)
            .await
            .map_err(TickError::Fetch)?;
        let mut report = TickReport {
            due: due.len(),
            dispatched: 0,
            legacy: 0,
            failed: 0,
            skipped: 0,
            flags: flags.clone(),
            failures: Vec::new(),
        };

        let claims: Vec<(EmailRecord, Result<Option<Claim>, StoreError>)> = stream::iter(due)
            .map(|email| async {
                let route = flags.route(&email.message.email_id);
                let claim = self.emails.claim(&email.message.email_id, route, now).await;
                (email, claim)
            })
            .buffered(CLAIM_CONCURRENCY)
            .collect()
            .await;

        let mut symphony = Vec::new();
        let mut legacy = Vec::new();
        for (email, claim) in claims {
            match claim {
                Ok(Some(claim)) if claim.route == Route::Symphony => symphony.push((email, claim)),
                Ok(Some(claim)) => legacy.push((email, claim)),
                Ok(None) => report.skipped += 1,
                Err(error) => {
                    warn!(email_id = %email.message.email_id, error = %symphony_core::error::chain(&error), "claim failed; the email stays queued");
                    report.failed += 1;
                    report.failures.push(UnitFailure {
                        route: flags.route(&email.message.email_id),
                        email_id: email.message.email_id,
                        reason: symphony_core::error::chain(&error),
                        released: true,
                    });
                }
            }
        }

        let dispatched = self.deliver(&self.queue, symphony, &mut report).await;
        report.dispatched = dispatched;
        let sent_inline = self.deliver(&self.legacy, legacy, &mut report).await;
        report.legacy = sent_inline;

        info!(
            due = report.due,
            dispatched = report.dispatched,
            legacy = report.legacy,
            failed = report.failed,
            skipped = report.skipped,
            flags_readable = report.flags.table_error.is_none(),
            "email tick done"
        );
        Ok(report)
    }

    /// Sends claimed emails through one path; returns how many went. A failure releases
    /// the claim when a later tick may succeed, and marks the email failed when not.
    async fn deliver(
        &self,
        dispatcher: &Dispatcher,
        claimed: Vec<(EmailRecord, Claim)>,
        report: &mut TickReport,
    ) -> usize {
        if claimed.is_empty() {
            return 0;
        }
        let mut envelopes = Vec::with_capacity(claimed.len());
        let mut owners = Vec::with_capacity(claimed.len());
        for (email, claim) in claimed {
            match Envelope::wrap(&email.message, SOURCE, Some(email.message.email_id.clone())) {
                Ok(envelope) => {
                    envelopes.push(envelope);
                    owners.push(claim);
                }
                Err(error) => {
                    self.give_up(&claim, &symphony_core::error::chain(&error), report)
                        .await;
                }
            }
        }
        let deliveries: Vec<Delivery> = dispatcher.dispatch(envelopes).await;
        let mut delivered = 0;
        for (delivery, claim) in deliveries.into_iter().zip(owners) {
            match delivery.result {
                Ok(()) => delivered += 1,
                Err(TransportError::Handler(error)) if !error.is_retryable() => {
                    // The handler has already marked the email failed, with its reason.
                    self.count_failure(&claim, error.full_reason(), false, report);
                }
                Err(error) if error.is_retryable() => {
                    let reason = symphony_core::error::chain(&error);
                    match self.emails.release(&claim).await {
                        Ok(_) => self.count_failure(&claim, reason, true, report),
                        Err(release) => {
                            error!(email_id = %claim.email_id, error = %symphony_core::error::chain(&release), "could not release the claim; the email stays claimed");
                            self.count_failure(&claim, reason, false, report);
                        }
                    }
                }
                Err(error) => {
                    self.give_up(&claim, &symphony_core::error::chain(&error), report)
                        .await
                }
            }
        }
        delivered
    }

    async fn give_up(&self, claim: &Claim, reason: &str, report: &mut TickReport) {
        if let Err(error) = self
            .emails
            .mark_failed(&claim.email_id, reason, Utc::now().timestamp())
            .await
        {
            error!(email_id = %claim.email_id, error = %symphony_core::error::chain(&error), "could not mark the email failed; it stays claimed");
        }
        self.count_failure(claim, reason.to_owned(), false, report);
    }

    fn count_failure(
        &self,
        claim: &Claim,
        reason: String,
        released: bool,
        report: &mut TickReport,
    ) {
        warn!(email_id = %claim.email_id, route = %claim.route, released, reason = %reason, "email not sent this tick");
        report.failed += 1;
        report.failures.push(UnitFailure {
            email_id: claim.email_id.clone(),
            route: claim.route,
            reason,
            released,
        });
    }
}
