//! In-memory adapters of the jobs' ports, beside the DynamoDB, SMTP and SNS ones: with
//! [`symphony_core::MemoryLedger`] they run a job's handler in milliseconds. The senders
//! answer from a script and keep what they were asked to send.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use symphony_core::{Claim, Due, Route, StoreError, Transition};

use crate::campaign::ports::{CampaignStore, LeadNext, LeadStore, Quota, SendQuota};
use crate::campaign::{Campaign, CampaignStatus, Lead, LeadStatus};
use crate::email::Mailbox;
use crate::email::ports::{MailboxStore, Mailer, OutgoingEmail};
use crate::sms::Sequence;
use crate::sms::ports::{OptOuts, SequenceStore, SmsSender};
use symphony_core::HandlerError;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every change is one push or insert: a panic elsewhere cannot leave it half-made.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn refused(table: &str) -> StoreError {
    StoreError::Unavailable {
        operation: "memory table",
        table: table.to_owned(),
        retryable: false,
        source: "access denied".into(),
    }
}

/// Records by id, or a table that refuses every read.
#[derive(Debug)]
pub struct MemoryTable<T> {
    name: &'static str,
    rows: Mutex<HashMap<String, T>>,
    refusing: Mutex<bool>,
}

impl<T: Clone> MemoryTable<T> {
    pub fn new(name: &'static str, rows: impl IntoIterator<Item = (String, T)>) -> Self {
        Self {
            name,
            rows: Mutex::new(rows.into_iter().collect()),
            refusing: Mutex::new(false),
        }
    }

    /// From now on every read fails as a table that denies access does.
    pub fn refuse(&self) {
        *lock(&self.refusing) = true;
    }

    fn read(&self, id: &str) -> Result<Option<T>, StoreError> {
        if *lock(&self.refusing) {
            return Err(refused(self.name));
        }
        Ok(lock(&self.rows).get(id).cloned())
    }
}

/// The mailboxes table in memory.
pub type MemoryMailboxes = MemoryTable<Mailbox>;

impl MemoryMailboxes {
    pub fn of(mailboxes: impl IntoIterator<Item = Mailbox>) -> Self {
        Self::new(
            "mailboxes",
            mailboxes
                .into_iter()
                .map(|mailbox| (mailbox.mailbox_id.clone(), mailbox)),
        )
    }
}

#[async_trait]
impl MailboxStore for MemoryMailboxes {
    async fn get(&self, mailbox_id: &str) -> Result<Option<Mailbox>, StoreError> {
        self.read(mailbox_id)
    }
}

/// The sequences table in memory.
pub type MemorySequences = MemoryTable<Sequence>;

impl MemorySequences {
    pub fn of(sequences: impl IntoIterator<Item = Sequence>) -> Self {
        Self::new(
            "sequences",
            sequences
                .into_iter()
                .map(|sequence| (sequence.sequence_id.clone(), sequence)),
        )
    }
}

#[async_trait]
impl SequenceStore for MemorySequences {
    async fn get(&self, sequence_id: &str) -> Result<Option<Sequence>, StoreError> {
        self.read(sequence_id)
    }
}

/// The opt-out table in memory: the numbers that asked to stop.
#[derive(Debug, Default)]
pub struct MemoryOptOuts {
    numbers: Mutex<HashSet<String>>,
}

impl MemoryOptOuts {
    pub fn of<'a>(numbers: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            numbers: Mutex::new(numbers.into_iter().map(str::to_owned).collect()),
        }
    }
}

#[async_trait]
impl OptOuts for MemoryOptOuts {
    async fn is_opted_out(&self, phone: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.numbers).contains(phone))
    }
}

/// A mailer that answers each send with the next scripted answer (accepted once the
/// script is used up), and keeps every email it was asked to send.
#[derive(Debug, Default)]
pub struct ScriptedMailer {
    answers: Mutex<VecDeque<Result<(), HandlerError>>>,
    attempts: Mutex<Vec<OutgoingEmail>>,
}

impl ScriptedMailer {
    pub fn answering(answers: impl IntoIterator<Item = Result<(), HandlerError>>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().collect()),
            attempts: Mutex::default(),
        }
    }

    /// Every email it was asked to send, in order.
    pub fn attempts(&self) -> Vec<OutgoingEmail> {
        lock(&self.attempts).clone()
    }
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(
        &self,
        _: &Mailbox,
        email: &OutgoingEmail,
        _: Option<Instant>,
    ) -> Result<(), HandlerError> {
        lock(&self.attempts).push(email.clone());
        lock(&self.answers).pop_front().unwrap_or(Ok(()))
    }
}

/// An SMS sender that answers from a script as [`ScriptedMailer`] does; an accepted text
/// gets the provider id `msg-<n>`.
#[derive(Debug, Default)]
pub struct ScriptedSmsSender {
    answers: Mutex<VecDeque<Result<(), HandlerError>>>,
    attempts: Mutex<Vec<(String, String)>>,
}

impl ScriptedSmsSender {
    pub fn answering(answers: impl IntoIterator<Item = Result<(), HandlerError>>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().collect()),
            attempts: Mutex::default(),
        }
    }

    /// Every (number, body) it was asked to send, in order.
    pub fn attempts(&self) -> Vec<(String, String)> {
        lock(&self.attempts).clone()
    }
}

#[async_trait]
impl SmsSender for ScriptedSmsSender {
    async fn send(&self, phone: &str, body: &str) -> Result<String, HandlerError> {
        let attempt = {
            let mut attempts = lock(&self.attempts);
            attempts.push((phone.to_owned(), body.to_owned()));
            attempts.len()
        };
        lock(&self.answers)
            .pop_front()
            .unwrap_or(Ok(()))
            .map(|()| format!("msg-{attempt}"))
    }
}

/// The campaigns table in memory: campaigns, their leases and their recorded errors.
#[derive(Debug, Default)]
pub struct MemoryCampaigns {
    campaigns: Mutex<HashMap<String, (Campaign, Option<Lease>)>>,
    errors: Mutex<HashMap<String, String>>,
}

#[derive(Debug, Clone)]
struct Lease {
    token: String,
    until: i64,
}

impl MemoryCampaigns {
    pub fn of(campaigns: impl IntoIterator<Item = Campaign>) -> Self {
        let campaigns = campaigns
            .into_iter()
            .map(|campaign| (campaign.campaign_id.clone(), (campaign, None)))
            .collect();
        Self {
            campaigns: Mutex::new(campaigns),
            errors: Mutex::default(),
        }
    }

    /// The campaign as stored.
    pub fn peek(&self, campaign_id: &str) -> Option<Campaign> {
        lock(&self.campaigns)
            .get(campaign_id)
            .map(|(campaign, _)| campaign.clone())
    }
}

#[async_trait]
impl CampaignStore for MemoryCampaigns {
    async fn fetch_active(&self, limit: usize, now: i64) -> Result<Due<Campaign>, StoreError> {
        let campaigns = lock(&self.campaigns);
        let mut active: Vec<(i64, Campaign)> = campaigns
            .values()
            .filter(|(campaign, lease)| {
                campaign.status == CampaignStatus::Active
                    && lease.as_ref().is_none_or(|lease| lease.until <= now)
            })
            .map(|(campaign, lease)| {
                let last_run = lease.as_ref().map_or(i64::MIN, |lease| lease.until);
                (last_run, campaign.clone())
            })
            .collect();
        active.sort_by(|(a_run, a), (b_run, b)| {
            (a_run, &a.campaign_id).cmp(&(b_run, &b.campaign_id))
        });
        Ok(Due::from(
            active
                .into_iter()
                .take(limit)
                .map(|(_, campaign)| campaign)
                .collect::<Vec<_>>(),
        ))
    }

    async fn get(&self, campaign_id: &str) -> Result<Option<Campaign>, StoreError> {
        Ok(self.peek(campaign_id))
    }

    async fn lease(
        &self,
        campaign_id: &str,
        route: Route,
        now: i64,
        until: i64,
    ) -> Result<Option<Claim>, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        let Some((campaign, lease)) = campaigns.get_mut(campaign_id) else {
            return Ok(None);
        };
        let free = lease.as_ref().is_none_or(|lease| lease.until <= now);
        if campaign.status != CampaignStatus::Active || !free {
            return Ok(None);
        }
        let token = uuid::Uuid::new_v4().to_string();
        *lease = Some(Lease {
            token: token.clone(),
            until,
        });
        Ok(Some(Claim {
            unit_id: campaign_id.to_owned(),
            token,
            route,
        }))
    }

    async fn release(&self, claim: &Claim) -> Result<Transition, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        match campaigns.get_mut(&claim.unit_id) {
            Some((_, Some(lease))) if lease.token == claim.token => {
                // Ended now, not removed: the rotation still knows when it last ran.
                lease.until = chrono::Utc::now().timestamp();
                lease.token.clear();
                Ok(Transition::Done)
            }
            _ => Ok(Transition::Conflict),
        }
    }

    async fn complete(&self, campaign_id: &str) -> Result<Transition, StoreError> {
        let mut campaigns = lock(&self.campaigns);
        match campaigns.get_mut(campaign_id) {
            Some((campaign, _)) if campaign.status == CampaignStatus::Active => {
                campaign.status = CampaignStatus::Completed;
                Ok(Transition::Done)
            }
            _ => Ok(Transition::Conflict),
        }
    }

    async fn record_error(&self, campaign_id: &str, reason: &str) -> Result<(), StoreError> {
        // As the table's conditional write: only a campaign that exists keeps a reason.
        if lock(&self.campaigns).contains_key(campaign_id) {
            let kept =
                symphony_core::ledger::truncate(reason, symphony_core::ledger::MAX_REASON_BYTES);
            lock(&self.errors).insert(campaign_id.to_owned(), kept.to_owned());
        }
        Ok(())
    }
}

/// The leads table in memory.
#[derive(Debug, Default)]
pub struct MemoryLeads {
    leads: Mutex<BTreeMap<(String, String), Lead>>,
    /// Why each failed lead failed, by (campaign, lead).
    reasons: Mutex<HashMap<(String, String), String>>,
}

impl MemoryLeads {
    pub fn of(leads: impl IntoIterator<Item = Lead>) -> Self {
        let leads = leads
            .into_iter()
            .map(|lead| ((lead.campaign_id.clone(), lead.lead_id.clone()), lead))
            .collect();
        Self {
            leads: Mutex::new(leads),
            reasons: Mutex::default(),
        }
    }

    /// The lead as stored, and why it failed if it did.
    pub fn peek(&self, campaign_id: &str, lead_id: &str) -> Option<(Lead, Option<String>)> {
        let lead = lock(&self.leads)
            .get(&(campaign_id.to_owned(), lead_id.to_owned()))
            .cloned()?;
        let key = (campaign_id.to_owned(), lead_id.to_owned());
        let reason = lock(&self.reasons).get(&key).cloned();
        Some((lead, reason))
    }

    fn moved(
        &self,
        lead: &Lead,
        allowed: impl FnOnce(&Lead) -> bool,
        change: impl FnOnce(&mut Lead),
    ) -> Transition {
        let mut leads = lock(&self.leads);
        match leads.get_mut(&(lead.campaign_id.clone(), lead.lead_id.clone())) {
            Some(stored) if allowed(stored) => {
                change(stored);
                Transition::Done
            }
            _ => Transition::Conflict,
        }
    }
}

#[async_trait]
impl LeadStore for MemoryLeads {
    async fn due(
        &self,
        campaign_id: &str,
        now: i64,
        limit: usize,
    ) -> Result<Due<Lead>, StoreError> {
        let mut due: Vec<Lead> = lock(&self.leads)
            .values()
            .filter(|lead| {
                lead.campaign_id == campaign_id
                    && lead.status == LeadStatus::Active
                    && lead.next_due_at <= now
            })
            .cloned()
            .collect();
        due.sort_by_key(|lead| lead.next_due_at);
        due.truncate(limit);
        Ok(Due::from(due))
    }

    async fn all_settled(&self, campaign_id: &str) -> Result<bool, StoreError> {
        Ok(!lock(&self.leads)
            .values()
            .any(|lead| lead.campaign_id == campaign_id && lead.status == LeadStatus::Active))
    }

    async fn advance(
        &self,
        lead: &Lead,
        from: usize,
        next: LeadNext,
    ) -> Result<Transition, StoreError> {
        let allowed =
            |stored: &Lead| stored.status == LeadStatus::Active && stored.current_step == from;
        Ok(self.moved(lead, allowed, |stored| match next {
            LeadNext::Step { index, due_at } => {
                stored.current_step = index;
                stored.next_due_at = due_at;
            }
            LeadNext::Finished => {
                stored.status = LeadStatus::Finished;
                stored.current_step = from + 1;
            }
        }))
    }

    async fn fail(&self, lead: &Lead, reason: &str) -> Result<Transition, StoreError> {
        let moved = self.moved(
            lead,
            |stored| stored.status == LeadStatus::Active,
            |stored| stored.status = LeadStatus::Failed,
        );
        if moved == Transition::Done {
            let key = (lead.campaign_id.clone(), lead.lead_id.clone());
            let kept =
                symphony_core::ledger::truncate(reason, symphony_core::ledger::MAX_REASON_BYTES);
            lock(&self.reasons).insert(key, kept.to_owned());
        }
        Ok(moved)
    }
}

/// Daily send counters in memory: which emails hold a send of which mailbox and day.
#[derive(Debug, Default)]
pub struct MemoryQuota {
    reserved: Mutex<HashMap<(String, String), HashSet<String>>>,
}

#[async_trait]
impl SendQuota for MemoryQuota {
    async fn reserve(
        &self,
        mailbox_id: &str,
        day: &str,
        email_id: &str,
        limit: u32,
    ) -> Result<Quota, StoreError> {
        let mut reserved = lock(&self.reserved);
        let holders = reserved
            .entry((mailbox_id.to_owned(), day.to_owned()))
            .or_default();
        if holders.contains(email_id) {
            return Ok(Quota::Reserved);
        }
        if holders.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Ok(Quota::Full);
        }
        holders.insert(email_id.to_owned());
        Ok(Quota::Reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::contract;
    use crate::campaign::{CampaignStep, Lead};
    use crate::window::HourWindow;

    fn campaign(id: &str, status: CampaignStatus) -> Campaign {
        Campaign {
            campaign_id: id.into(),
            user_id: "u".into(),
            status,
            mailbox_id: "mb".into(),
            from_name: "Ada".into(),
            from_email: "ada@example.com".into(),
            time_zone: chrono_tz::Tz::UTC,
            window: HourWindow::new(0, 24).unwrap(),
            steps: vec![CampaignStep {
                subject: "s".into(),
                html: "h".into(),
                delay_hours: 0,
            }],
        }
    }

    fn lead(id: &str, due_at: i64, status: LeadStatus) -> Lead {
        Lead {
            campaign_id: "c1".into(),
            lead_id: id.into(),
            email: format!("{id}@example.com"),
            first_name: "Kim".into(),
            last_name: String::new(),
            fields: BTreeMap::new(),
            current_step: 0,
            next_due_at: due_at,
            status,
        }
    }

    #[tokio::test]
    async fn the_memory_campaign_adapters_keep_the_contract() {
        let (active, paused) = (
            campaign("c1", CampaignStatus::Active),
            campaign("c2", CampaignStatus::Paused),
        );
        let campaigns = MemoryCampaigns::of([active.clone(), paused.clone()]);
        contract::check_campaigns(&campaigns, &active, &paused).await;

        let now = chrono::Utc::now().timestamp();
        let leads = [
            lead("due", now - 60, LeadStatus::Active),
            lead("waiting", now + 3_600, LeadStatus::Active),
            lead("done", now - 60, LeadStatus::Finished),
        ];
        let store = MemoryLeads::of(leads.clone());
        contract::check_leads(&store, &leads[0], &leads[1], &leads[2]).await;

        contract::check_quota(&MemoryQuota::default(), "mb").await;
    }
}
