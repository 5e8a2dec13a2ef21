//! What campaign processing needs from the outside world, as traits.

use async_trait::async_trait;
use symphony_core::{Claim, Due, Route};

use super::model::{Campaign, Lead};
use symphony_core::ledger::{StoreError, Transition};

/// Port: the campaigns table.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Active campaigns not leased now, at most `limit`: those whose last run is oldest,
    /// never-run ones first, so every campaign gets its turn.
    /// Rows that do not parse (an hour of 25...) are quarantined and returned apart.
    async fn fetch_active(&self, limit: usize, now: i64) -> Result<Due<Campaign>, StoreError>;
    async fn get(&self, campaign_id: &str) -> Result<Option<Campaign>, StoreError>;
    /// Leases an active campaign for one route until `until` (epoch seconds), unless
    /// someone holds an unexpired lease.
    async fn lease(
        &self,
        campaign_id: &str,
        route: Route,
        now: i64,
        until: i64,
    ) -> Result<Option<Claim>, StoreError>;
    async fn release(&self, claim: &Claim) -> Result<Transition, StoreError>;
    /// Active → completed.
    async fn complete(&self, campaign_id: &str) -> Result<Transition, StoreError>;
    /// Records why the campaign could not be dispatched (bounded in size).
    async fn record_error(&self, campaign_id: &str, reason: &str) -> Result<(), StoreError>;
}

/// Where a lead goes after a step was created for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadNext {
    Step { index: usize, due_at: i64 },
    Finished,
}

/// Port: the leads table.
#[async_trait]
pub trait LeadStore: Send + Sync {
    /// Active leads of a campaign due at `now`, oldest first, at most `limit`; leads that
    /// do not parse are quarantined and returned apart.
    async fn due(&self, campaign_id: &str, now: i64, limit: usize)
    -> Result<Due<Lead>, StoreError>;
    /// True when no lead of the campaign is active any more.
    async fn all_settled(&self, campaign_id: &str) -> Result<bool, StoreError>;
    /// Moves an active lead from step `from` on; a conflict means it moved already.
    async fn advance(
        &self,
        lead: &Lead,
        from: usize,
        next: LeadNext,
    ) -> Result<Transition, StoreError>;
    /// Active → failed, with the reason.
    async fn fail(&self, lead: &Lead, reason: &str) -> Result<Transition, StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// This email holds one of the day's sends (also when it already held it).
    Reserved,
    /// The day's limit is reached.
    Full,
}

/// Port: per-mailbox daily send counters.
#[async_trait]
pub trait SendQuota: Send + Sync {
    /// Reserves one send of `day` for `email_id`, atomically and idempotently: the same
    /// email never counts twice, and the count never passes `limit`.
    async fn reserve(
        &self,
        mailbox_id: &str,
        day: &str,
        email_id: &str,
        limit: u32,
    ) -> Result<Quota, StoreError>;
}
