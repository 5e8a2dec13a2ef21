//! The SMS drip's adapters: the enrollments, sequences and opt-out tables, the SNS
//! sender, and the configuration of `process-sms-drip` and `handle-sms`.

pub mod config;
pub mod dynamo;
pub mod sns;

pub use config::{SmsTickConfig, SmsWorkerConfig};
