//! `process-campaigns`' work source: active campaigns, each leased for one run.

use std::sync::Arc;

use async_trait::async_trait;
use symphony_core::{Claim, Due, Envelope, EnvelopeError, HandlerError, Route, Tick, WorkSource};

use super::CAMPAIGN_FLAG;
use super::message::{CampaignAction, CampaignProcessingMessage};
use super::model::Campaign;
use super::ports::CampaignStore;

/// The function name recorded as each envelope's source.
pub const SOURCE: &str = "process-campaigns";

/// How long a dispatched campaign is leased: overlapping ticks within it dispatch it once.
pub const LEASE_SECONDS: i64 = 300;

pub type CampaignTick = Tick<CampaignWork>;

pub struct CampaignWork {
    campaigns: Arc<dyn CampaignStore>,
}

impl std::fmt::Debug for CampaignWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignWork").finish_non_exhaustive()
    }
}

impl CampaignWork {
    pub fn new(campaigns: Arc<dyn CampaignStore>) -> Self {
        Self { campaigns }
    }
}

#[async_trait]
impl WorkSource for CampaignWork {
    type Unit = Campaign;

    fn flag(&self) -> &'static str {
        CAMPAIGN_FLAG
    }

    fn unit_id(&self, campaign: &Campaign) -> String {
        campaign.campaign_id.clone()
    }

    async fn fetch_due(&self, now: i64, limit: usize) -> Result<Due<Campaign>, HandlerError> {
        self.campaigns
            .fetch_active(limit, now)
            .await
            .map_err(|e| HandlerError::from_source("fetching active campaigns", e))
    }

    async fn claim(
        &self,
        campaign: &Campaign,
        route: Route,
        now: i64,
    ) -> Result<Option<Claim>, HandlerError> {
        self.campaigns
            .lease(&campaign.campaign_id, route, now, now + LEASE_SECONDS)
            .await
            .map_err(|e| HandlerError::from_source("leasing a campaign", e))
    }

    async fn release(&self, claim: &Claim) -> Result<bool, HandlerError> {
        self.campaigns
            .release(claim)
            .await
            .map(|done| done == symphony_core::ledger::Transition::Done)
            .map_err(|e| HandlerError::from_source("releasing a campaign", e))
    }

    async fn mark_failed(&self, claim: &Claim, reason: &str, _: i64) -> Result<(), HandlerError> {
        // A campaign is not given up on: record why, and let the lease run out so a later
        // tick tries again.
        self.campaigns
            .record_error(&claim.unit_id, reason)
            .await
            .map_err(|e| HandlerError::from_source("recording a campaign error", e))
    }

    fn envelope(&self, campaign: &Campaign, source: &str) -> Result<Envelope, EnvelopeError> {
        let message = CampaignProcessingMessage {
            campaign_id: campaign.campaign_id.clone(),
            user_id: campaign.user_id.clone(),
            action: CampaignAction::Process,
        };
        Envelope::wrap(&message, source, Some(campaign.campaign_id.clone()))
    }
}
