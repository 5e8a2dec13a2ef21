//! Campaign processing: `process-campaigns` dispatches one message per active campaign,
//! `handle-campaign` turns each due lead's next step into an email on the email queue.

pub mod contract;
pub mod handler;
pub mod message;
pub mod model;
pub mod ports;
pub mod work;

pub use handler::ProcessCampaignHandler;
pub use message::{CampaignAction, CampaignProcessingMessage};
pub use model::{Campaign, CampaignStatus, CampaignStep, Lead, LeadStatus};
pub use work::{CampaignTick, CampaignWork};

/// The job's flag in the flag table.
pub const CAMPAIGN_FLAG: &str = "SYMPHONY_CAMPAIGN_PROCESSING_ENABLED";
