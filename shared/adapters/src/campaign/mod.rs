//! Campaign processing's adapters: the campaigns, leads and quota tables, and the
//! configuration of `process-campaigns` and `handle-campaign`.

pub mod config;
pub mod dynamo;

pub use config::{CampaignTickConfig, CampaignWorkerConfig};
