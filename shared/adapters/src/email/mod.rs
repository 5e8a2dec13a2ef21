//! The email queue's adapters: the emails and mailboxes tables, the SMTP and outbox
//! mailers, and the configuration of `process-email-queue` and `handle-email`.

pub mod config;
pub mod dynamo;
pub mod outbox;
pub mod smtp;

pub use config::{EmailTickConfig, EmailWorkerConfig, MailerChoice};
