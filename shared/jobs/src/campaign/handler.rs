//! `ProcessCampaignHandler`: one run of a campaign. Each due lead's current step becomes
//! one email record (created once, whatever the redeliveries), within the sending window
//! and the mailbox's daily limit, and the lead moves on.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use symphony_core::{
    Dispatcher, Envelope, FailureKind, FlagReader, HandlerContext, HandlerError, Ledger, Retryable,
    Route, TypedHandler,
};
use tracing::{error, info, warn};

use super::message::CampaignProcessingMessage;
use super::model::{Campaign, CampaignStatus, Lead, LeadStatus};
use super::ports::{CampaignStore, LeadNext, LeadStore, Quota, SendQuota};
use crate::email::ports::MailboxStore;
use crate::email::{EMAIL_FLAG, EmailMessage, EmailRecord, EmailStatus, Mailbox};
use crate::template::{Escape, render};
use symphony_core::ledger::Transition;

/// The function name recorded as the source of the emails' envelopes.
pub const SOURCE: &str = "handle-campaign";

/// A run starts no lead with less than this left of its invocation: enough to enqueue the
/// emails made so far and answer.
pub const RUN_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

/// What every lead of one run shares.
#[derive(Clone, Copy)]
struct RunContext<'a> {
    campaign: &'a Campaign,
    mailbox: &'a Mailbox,
    day: &'a str,
    now: DateTime<Utc>,
}

/// What a lead's turn says about the run.
enum LeadStep {
    Next,
    /// The mailbox's daily limit is reached: this lead and the rest wait for tomorrow.
    QuotaFull,
}

pub struct ProcessCampaignHandler {
    campaigns: Arc<dyn CampaignStore>,
    leads: Arc<dyn LeadStore>,
    emails: Arc<dyn Ledger<EmailRecord>>,
    mailboxes: Arc<dyn MailboxStore>,
    quota: Arc<dyn SendQuota>,
    /// The email queue: on the symphony path new emails go straight onto it.
    email_queue: Dispatcher,
    /// The email job's flags: they, not the campaign's, decide whether a created email
    /// goes on the email queue or waits, `queued`, for the email tick.
    email_flags: FlagReader,
    leads_per_run: usize,
}

impl std::fmt::Debug for ProcessCampaignHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCampaignHandler")
            .field("leads_per_run", &self.leads_per_run)
            .finish_non_exhaustive()
    }
}

/// What one run did, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CampaignRun {
    pub emails_created: usize,
    pub leads_failed: usize,
    pub leads_waiting: usize,
    pub emails_enqueued: usize,
}

impl ProcessCampaignHandler {
    #[allow(clippy::too_many_arguments)] // each is a port the handler really uses
    pub fn new(
        campaigns: Arc<dyn CampaignStore>,
        leads: Arc<dyn LeadStore>,
        emails: Arc<dyn Ledger<EmailRecord>>,
        mailboxes: Arc<dyn MailboxStore>,
        quota: Arc<dyn SendQuota>,
        email_queue: Dispatcher,
        email_flags: FlagReader,
        leads_per_run: usize,
    ) -> Self {
        Self {
            campaigns,
            leads,
            emails,
            mailboxes,
            quota,
            email_queue,
            email_flags,
            leads_per_run,
        }
    }

    /// One run of a campaign: its due leads, each on its own, until the run's limit, the
    /// mailbox's daily limit, or too little of the invocation (before `deadline`) is left.
    pub async fn run(
        &self,
        campaign_id: &str,
        route: Route,
        now: DateTime<Utc>,
        deadline: Option<std::time::Instant>,
    ) -> Result<CampaignRun, HandlerError> {
        let mut run = CampaignRun::default();
        let campaign = self
            .campaigns
            .get(campaign_id)
            .await
            .map_err(|e| HandlerError::from_source("reading the campaign", e))?
            .ok_or_else(|| {
                HandlerError::permanent(format!("campaign {campaign_id} does not exist"))
            })?;
        if campaign.status != CampaignStatus::Active {
            info!(
                campaign_id,
                status = campaign.status.as_str(),
                "campaign not active; nothing to do"
            );
            return Ok(run);
        }
        let mailbox = self
            .mailboxes
            .get(&campaign.mailbox_id)
            .await
            .map_err(|e| e.of_dependency("reading the campaign's mailbox"))?
            .ok_or_else(|| {
                HandlerError::permanent(format!("mailbox {} does not exist", campaign.mailbox_id))
            })?;
        if !campaign.window.is_open(now, campaign.time_zone) {
            info!(campaign_id, opens_at = %campaign.window.next_open(now, campaign.time_zone), "outside the sending window; leads wait");
            return Ok(run);
        }

        let due = self
            .leads
            .due(campaign_id, now.timestamp(), self.leads_per_run)
            .await
            .map_err(|e| HandlerError::from_source("reading due leads", e))?;
        // A lead that does not parse was quarantined (failed, naming the attribute): it
        // fails alone, and the run goes on with the others.
        for poison in &due.quarantined {
            warn!(campaign_id, lead_id = %poison.unit_id, reason = %poison.reason, "lead quarantined");
        }
        run.leads_failed += due.quarantined.len();
        let leads = due.units;
        let day = now.format("%Y-%m-%d").to_string();
        let mut created = Vec::new();
        // Each lead on its own: one lead's failure never stops the others. A fault that
        // is not the lead's (a table that cannot be written...) is returned after the
        // others had their turn, so the campaign message comes back for what is left.
        let mut fault = None;
        for (position, lead) in leads.iter().enumerate() {
            // Time to enqueue what was made and answer is kept; the rest wait for the
            // campaign's next run (nothing is lost: every step can be repeated).
            if deadline.is_some_and(|deadline| {
                deadline.saturating_duration_since(std::time::Instant::now()) < RUN_MARGIN
            }) {
                run.leads_waiting = leads.len() - position;
                warn!(
                    campaign_id,
                    waiting = run.leads_waiting,
                    "too little of the invocation left; leads wait for the next run"
                );
                break;
            }
            let context = RunContext {
                campaign: &campaign,
                mailbox: &mailbox,
                day: &day,
                now,
            };
            match self.lead(&context, lead, &mut run, &mut created).await {
                Ok(LeadStep::Next) => {}
                Ok(LeadStep::QuotaFull) => {
                    run.leads_waiting = leads.len() - position;
                    info!(campaign_id, mailbox_id = %mailbox.mailbox_id, waiting = run.leads_waiting, "daily limit reached");
                    break;
                }
                Err(error) if error.kind == FailureKind::Intrinsic => {
                    let reason = error.full_reason();
                    warn!(campaign_id, lead_id = %lead.lead_id, reason = %reason, "lead failed");
                    if let Err(mark) = self.leads.fail(lead, &reason).await {
                        warn!(campaign_id, lead_id = %lead.lead_id, error = %symphony_core::error::chain(&mark), "could not mark the lead failed");
                    }
                    run.leads_failed += 1;
                }
                Err(error) => {
                    warn!(campaign_id, lead_id = %lead.lead_id, kind = %error.kind, error = %error.full_reason(), "lead not done this run");
                    fault.get_or_insert(error);
                }
            }
        }

        if !created.is_empty() {
            // Each job's flag governs its own queue: an email the email job routes to
            // legacy stays `queued`, for the email tick's legacy path.
            let email_flags = self.email_flags.evaluate(EMAIL_FLAG).await;
            let to_queue: Vec<EmailRecord> = created
                .into_iter()
                .filter(|email| email_flags.route(&email.message.email_id) == Route::Symphony)
                .collect();
            run.emails_enqueued = self.enqueue(to_queue, now.timestamp()).await;
        }
        if let Some(fault) = fault {
            return Err(fault);
        }
        if run.leads_waiting == 0
            && self
                .leads
                .all_settled(campaign_id)
                .await
                .map_err(|e| HandlerError::from_source("counting active leads", e))?
        {
            self.campaigns
                .complete(campaign_id)
                .await
                .map_err(|e| HandlerError::from_source("completing the campaign", e))?;
            info!(campaign_id, "campaign completed");
        }
        info!(
            campaign_id,
            emails_created = run.emails_created,
            emails_enqueued = run.emails_enqueued,
            leads_failed = run.leads_failed,
            leads_waiting = run.leads_waiting,
            route = %route,
            "campaign processed"
        );
        Ok(run)
    }

    /// One lead's turn: render its step, reserve the quota, create its email, move it on.
    async fn lead(
        &self,
        context: &RunContext<'_>,
        lead: &Lead,
        run: &mut CampaignRun,
        created: &mut Vec<EmailRecord>,
    ) -> Result<LeadStep, HandlerError> {
        let RunContext {
            campaign,
            mailbox,
            day,
            now,
        } = *context;
        let campaign_id = campaign.campaign_id.as_str();
        if lead.status != LeadStatus::Active {
            return Ok(LeadStep::Next);
        }
        let Some(step) = campaign.steps.get(lead.current_step) else {
            self.advance(lead, LeadNext::Finished).await?;
            return Ok(LeadStep::Next);
        };
        let email_id = lead.email_id(lead.current_step);
        let rendered =
            render(&step.subject, &lead.template_values(), Escape::None).and_then(|subject| {
                render(&step.html, &lead.template_values(), Escape::Html)
                    .map(|html| (subject, html))
            });
        let (subject, html) = match rendered {
            Ok(rendered) => rendered,
            Err(error) => {
                return Err(HandlerError::permanent(format!(
                    "step {} of campaign {campaign_id}: {error}",
                    lead.current_step
                )));
            }
        };
        if let Some(limit) = mailbox.daily_limit {
            let quota = self
                .quota
                .reserve(&mailbox.mailbox_id, day, &email_id, limit)
                .await
                .map_err(|e| HandlerError::from_source("reserving a send", e))?;
            if quota == Quota::Full {
                // Over the limit: the rest wait for tomorrow's quota; they are not failed.
                return Ok(LeadStep::QuotaFull);
            }
        }
        let email = EmailRecord {
            message: EmailMessage {
                email_id,
                user_id: campaign.user_id.clone(),
                mailbox_id: campaign.mailbox_id.clone(),
                to_email: lead.email.clone(),
                subject,
                html,
                from_name: campaign.from_name.clone(),
                from_email: campaign.from_email.clone(),
            },
            status: EmailStatus::Queued,
            due_at: now.timestamp(),
            claimed_by: None,
            last_error: None,
        };
        // The deterministic id makes this create the claim: a redelivered campaign
        // message finds the email there and creates nothing.
        let outcome = self
            .emails
            .create(&email)
            .await
            .map_err(|e| HandlerError::from_source("creating an email", e))?;
        if outcome == Transition::Done {
            run.emails_created += 1;
            created.push(email);
        }
        self.advance(lead, next_of(campaign, lead, now)).await?;
        Ok(LeadStep::Next)
    }

    async fn advance(&self, lead: &Lead, next: LeadNext) -> Result<(), HandlerError> {
        self.leads
            .advance(lead, lead.current_step, next)
            .await
            .map(drop)
            .map_err(|e| HandlerError::from_source("advancing a lead", e))
    }

    /// Claims new emails for the symphony path and puts them on the email queue. An email
    /// that cannot go now is released to `queued`: the email tick takes it later.
    async fn enqueue(&self, emails: Vec<EmailRecord>, now: i64) -> usize {
        let mut claims = Vec::new();
        let mut envelopes = Vec::new();
        for email in emails {
            let id = email.message.email_id.clone();
            match self.emails.claim(&id, 0, Route::Symphony, now).await {
                Ok(Some(claim)) => match Envelope::wrap(&email.message, SOURCE, Some(id)) {
                    Ok(envelope) => {
                        envelopes.push(envelope);
                        claims.push(claim);
                    }
                    Err(error) => {
                        warn!(email_id = %claim.unit_id, error = %error, "cannot wrap the email; releasing it");
                        let _ = self.emails.release(&claim).await;
                    }
                },
                Ok(None) => {}
                Err(error) => {
                    warn!(email_id = %email.message.email_id, error = %symphony_core::error::chain(&error), "cannot claim the email; the email tick will take it")
                }
            }
        }
        let mut enqueued = 0;
        for (delivery, claim) in self
            .email_queue
            .dispatch(envelopes)
            .await
            .into_iter()
            .zip(claims)
        {
            match &delivery.result {
                Ok(()) => enqueued += 1,
                Err(failure) => {
                    // Released for the email tick either way; a fault of the queue (a
                    // missing grant, a missing queue) is said where the alarms look.
                    if failure.failure_kind() == FailureKind::Infrastructure {
                        error!(email_id = %claim.unit_id, error = %symphony_core::error::chain(failure), "INFRASTRUCTURE FAULT: the email queue refused a campaign's email; released for the email tick");
                    } else {
                        warn!(email_id = %claim.unit_id, error = %symphony_core::error::chain(failure), "a campaign's email was not enqueued; released for the email tick");
                    }
                    if let Err(error) = self.emails.release(&claim).await {
                        warn!(email_id = %claim.unit_id, error = %symphony_core::error::chain(&error), "cannot release the email; it stays claimed");
                    }
                }
            }
        }
        enqueued
    }
}

fn next_of(campaign: &Campaign, lead: &Lead, now: DateTime<Utc>) -> LeadNext {
    let index = lead.current_step + 1;
    match campaign.steps.get(index) {
        Some(step) => LeadNext::Step {
            index,
            due_at: now.timestamp() + step.delay_hours * 3_600,
        },
        None => LeadNext::Finished,
    }
}

#[async_trait]
impl TypedHandler<CampaignProcessingMessage> for ProcessCampaignHandler {
    async fn handle(
        &self,
        message: CampaignProcessingMessage,
        _: &Envelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        message.validate()?;
        self.run(
            &message.campaign_id,
            context.route,
            Utc::now(),
            context.deadline,
        )
        .await
        .map(drop)
    }
}
