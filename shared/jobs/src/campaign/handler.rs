//! `ProcessCampaignHandler`: one run of a campaign. Each due lead's current step becomes
//! one email record (created once, whatever the redeliveries), within the sending window
//! and the mailbox's daily limit, and the lead moves on.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use symphony_core::{
    Clock, Dispatcher, Envelope, FailureKind, FlagReader, HandlerContext, HandlerError, Ledger,
    Retryable, Route, SystemClock, TypedHandler,
};
use tracing::{debug, error, warn};

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
    clock: Arc<dyn Clock>,
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
            clock: Arc::new(SystemClock),
        }
    }

    /// The same handler reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
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
            debug!(
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
            debug!(campaign_id, opens_at = %campaign.window.next_open(now, campaign.time_zone), "outside the sending window; leads wait");
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
                deadline.saturating_duration_since(self.clock.now()) < RUN_MARGIN
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
                    debug!(campaign_id, mailbox_id = %mailbox.mailbox_id, waiting = run.leads_waiting, "daily limit reached");
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
            debug!(campaign_id, "campaign completed");
        }
        debug!(
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
                from_name: Some(campaign.from_name.clone()),
                from_email: Some(campaign.from_email.clone()),
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
            self.clock.utc(),
            context.deadline,
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use chrono::TimeZone;
    use symphony_core::flags::{FlagDefaults, GLOBAL_FLAG, MemoryFlagStore};
    use symphony_core::ledger::memory::Operation;
    use symphony_core::transport::MemoryQueue;
    use symphony_core::{MemoryLedger, UnitState};

    use super::*;
    use crate::campaign::CampaignStep;
    use crate::email::SmtpSecurity;
    use crate::memory::{MemoryCampaigns, MemoryLeads, MemoryMailboxes, MemoryQuota};
    use crate::window::HourWindow;

    /// 2026-06-01 12:00 UTC, inside the campaigns' 09–17 window.
    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn campaign(daily_limit_mailbox: &str) -> Campaign {
        Campaign {
            campaign_id: "c1".into(),
            user_id: "u".into(),
            status: CampaignStatus::Active,
            mailbox_id: daily_limit_mailbox.into(),
            from_name: "Ada".into(),
            from_email: "ada@example.com".into(),
            time_zone: chrono_tz::Tz::UTC,
            window: HourWindow::new(9, 17).unwrap(),
            steps: vec![
                CampaignStep {
                    subject: "Hi {{firstName}}".into(),
                    html: "<p>{{company}}</p>".into(),
                    delay_hours: 0,
                },
                CampaignStep {
                    subject: "Again".into(),
                    html: "<p>2</p>".into(),
                    delay_hours: 48,
                },
            ],
        }
    }

    fn lead(id: &str, company: Option<&str>) -> Lead {
        Lead {
            campaign_id: "c1".into(),
            lead_id: id.into(),
            email: format!("{id}@example.com"),
            first_name: "Kim".into(),
            last_name: String::new(),
            fields: company
                .map(|company| [("company".to_owned(), company.to_owned())].into())
                .unwrap_or_default(),
            current_step: 0,
            next_due_at: noon().timestamp() - 60,
            status: LeadStatus::Active,
        }
    }

    fn mailbox(id: &str, daily_limit: Option<u32>) -> Mailbox {
        Mailbox {
            mailbox_id: id.into(),
            user_id: "u".into(),
            smtp_host: "localhost".into(),
            smtp_port: 25,
            smtp_security: SmtpSecurity::None,
            smtp_username: None,
            smtp_password: None,
            daily_limit,
            from_name: None,
            from_email: None,
        }
    }

    struct Rig {
        campaigns: Arc<MemoryCampaigns>,
        leads: Arc<MemoryLeads>,
        emails: Arc<MemoryLedger<EmailRecord>>,
        queue: Arc<MemoryQueue>,
        flags: Arc<MemoryFlagStore>,
        handler: ProcessCampaignHandler,
    }

    /// Campaign `c1` over `leads`, from `mailbox_id` (`limited` has a daily limit of 2).
    fn setup(mailbox_id: &str, leads: Vec<Lead>) -> Rig {
        let campaigns = Arc::new(MemoryCampaigns::of([campaign(mailbox_id)]));
        let leads = Arc::new(MemoryLeads::of(leads));
        let emails = Arc::new(MemoryLedger::new());
        let mailboxes = MemoryMailboxes::of([mailbox("open", None), mailbox("limited", Some(2))]);
        let queue = Arc::new(MemoryQueue::default());
        let flags = Arc::new(MemoryFlagStore::default());
        let handler = ProcessCampaignHandler::new(
            campaigns.clone(),
            leads.clone(),
            emails.clone(),
            Arc::new(mailboxes),
            Arc::new(MemoryQuota::default()),
            Dispatcher::new(queue.clone()),
            FlagReader::new(flags.clone(), FlagDefaults::default()),
            100,
        );
        Rig {
            campaigns,
            leads,
            emails,
            queue,
            flags,
            handler,
        }
    }

    impl Rig {
        async fn run(&self, at: DateTime<Utc>) -> Result<CampaignRun, HandlerError> {
            self.handler.run("c1", Route::Symphony, at, None).await
        }

        fn email_state(&self, lead_id: &str, step: usize) -> Option<UnitState> {
            use symphony_core::LedgerRecord;
            let id = format!("c1.{lead_id}.{step}");
            self.emails.peek(&id).map(|email| email.progress().state)
        }

        fn lead(&self, lead_id: &str) -> (Lead, Option<String>) {
            self.leads.peek("c1", lead_id).unwrap()
        }
    }

    fn three_leads() -> Vec<Lead> {
        vec![
            lead("l1", Some("Acme")),
            lead("l2", Some("Initech")),
            lead("l3", Some("Umbrella")),
        ]
    }

    #[tokio::test]
    async fn each_due_lead_gets_one_email_and_moves_on_and_a_redelivery_makes_none() {
        let rig = setup("open", three_leads());
        rig.flags.set(GLOBAL_FLAG, true, 100);
        rig.flags.set(EMAIL_FLAG, true, 100);
        let run = rig.run(noon()).await.unwrap();
        assert_eq!((run.emails_created, run.emails_enqueued), (3, 3));
        assert_eq!(rig.queue.sent().len(), 3);
        for id in ["l1", "l2", "l3"] {
            assert_eq!(rig.email_state(id, 0), Some(UnitState::Claimed), "{id}");
            let (lead, _) = rig.lead(id);
            assert_eq!(lead.current_step, 1);
            assert_eq!(lead.next_due_at, noon().timestamp() + 48 * 3_600);
        }
        let again = rig.run(noon()).await.unwrap();
        assert_eq!(
            again.emails_created, 0,
            "the leads moved on: nothing is due"
        );
        assert_eq!(rig.queue.sent().len(), 3);
    }

    #[tokio::test]
    async fn with_the_email_flag_off_the_emails_wait_queued_for_the_email_tick() {
        let rig = setup("open", three_leads());
        let run = rig.run(noon()).await.unwrap();
        assert_eq!((run.emails_created, run.emails_enqueued), (3, 0));
        assert!(rig.queue.sent().is_empty());
        assert_eq!(rig.email_state("l1", 0), Some(UnitState::Ready));
    }

    #[tokio::test]
    async fn a_lead_whose_step_cannot_render_fails_alone() {
        let rig = setup("open", vec![lead("l1", Some("Acme")), lead("bad", None)]);
        let run = rig.run(noon()).await.unwrap();
        assert_eq!((run.emails_created, run.leads_failed), (1, 1));
        let (bad, reason) = rig.lead("bad");
        assert_eq!(bad.status, LeadStatus::Failed);
        assert!(
            reason.unwrap().contains("company"),
            "the reason names the field"
        );
        assert_eq!(rig.email_state("bad", 0), None);
    }

    #[tokio::test]
    async fn the_daily_limit_keeps_the_rest_waiting_for_tomorrow() {
        let rig = setup("limited", three_leads());
        let run = rig.run(noon()).await.unwrap();
        assert_eq!((run.emails_created, run.leads_waiting), (2, 1));
        let waiting = ["l1", "l2", "l3"]
            .iter()
            .filter(|id| rig.lead(id).0.current_step == 0)
            .count();
        assert_eq!(waiting, 1);
        assert_eq!(
            rig.campaigns.peek("c1").unwrap().status,
            CampaignStatus::Active
        );
    }

    #[tokio::test]
    async fn outside_its_window_a_campaign_sends_nothing() {
        let rig = setup("open", three_leads());
        let evening = noon() + chrono::Duration::hours(8);
        let run = rig.run(evening).await.unwrap();
        assert_eq!(run, CampaignRun::default());
        assert_eq!(rig.lead("l1").0.current_step, 0);
    }

    #[tokio::test]
    async fn an_emails_table_that_refuses_writes_fails_no_lead_and_the_message_comes_back() {
        let rig = setup("open", three_leads());
        rig.emails.refuse(Operation::Create);
        let error = rig.run(noon()).await.unwrap_err();
        assert_eq!(error.kind, FailureKind::Infrastructure, "{error}");
        for id in ["l1", "l2", "l3"] {
            let (lead, _) = rig.lead(id);
            assert_eq!(
                (lead.status, lead.current_step),
                (LeadStatus::Active, 0),
                "{id}"
            );
        }
        rig.emails.allow(Operation::Create);
        assert_eq!(rig.run(noon()).await.unwrap().emails_created, 3);
    }

    #[tokio::test]
    async fn a_run_with_too_little_time_left_starts_no_lead() {
        let rig = setup("open", three_leads());
        let deadline = Instant::now() + Duration::from_secs(3);
        let run = rig
            .handler
            .run("c1", Route::Legacy, noon(), Some(deadline))
            .await
            .unwrap();
        assert_eq!((run.emails_created, run.leads_waiting), (0, 3));
    }

    #[tokio::test]
    async fn the_last_step_finishes_the_leads_and_completes_the_campaign() {
        let mut leads = three_leads();
        for lead in &mut leads {
            lead.current_step = 1;
        }
        let rig = setup("open", leads);
        let run = rig.run(noon()).await.unwrap();
        assert_eq!(run.emails_created, 3);
        assert_eq!(rig.lead("l2").0.status, LeadStatus::Finished);
        assert_eq!(
            rig.campaigns.peek("c1").unwrap().status,
            CampaignStatus::Completed
        );
    }

    #[tokio::test]
    async fn an_email_queue_that_refuses_sends_leaves_the_emails_queued_for_the_email_tick() {
        let rig = setup("open", three_leads());
        rig.flags.set(GLOBAL_FLAG, true, 100);
        rig.flags.set(EMAIL_FLAG, true, 100);
        rig.queue.refuse();
        let run = rig.run(noon()).await.unwrap();
        assert_eq!((run.emails_created, run.emails_enqueued), (3, 0));
        for id in ["l1", "l2", "l3"] {
            assert_eq!(
                rig.email_state(id, 0),
                Some(UnitState::Ready),
                "{id} released"
            );
            assert_eq!(
                rig.lead(id).0.current_step,
                1,
                "{id} moved on: its email exists"
            );
        }
    }

    #[tokio::test]
    async fn an_unreadable_flag_table_falls_back_and_the_emails_wait_queued() {
        let rig = setup("open", three_leads());
        rig.flags.set(GLOBAL_FLAG, true, 100);
        rig.flags.set(EMAIL_FLAG, true, 100);
        rig.flags.refuse();
        let run = rig.run(noon()).await.unwrap();
        assert_eq!(
            (run.emails_created, run.emails_enqueued),
            (3, 0),
            "legacy, the fallback"
        );
        assert!(rig.queue.sent().is_empty());
        assert_eq!(rig.email_state("l2", 0), Some(UnitState::Ready));
    }

    #[tokio::test]
    async fn a_missing_campaign_is_the_message_s_fault() {
        let rig = setup("open", Vec::new());
        let error = rig
            .handler
            .run("gone", Route::Symphony, noon(), None)
            .await
            .unwrap_err();
        assert_eq!(error.kind, FailureKind::Intrinsic);
        assert!(error.reason.contains("campaign gone does not exist"));
    }
}
