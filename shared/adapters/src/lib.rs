//! Symphony's job adapters: the outside world's side of each job's ports (the DynamoDB
//! tables, the SMTP and outbox mailers, the SNS sender, Secrets Manager), and the
//! configuration that wires a function from its environment. The jobs themselves
//! (`symphony-jobs`) know none of it.

pub mod campaign;
pub mod email;
pub mod job;
pub mod operations;
pub mod secrets_manager;
pub mod sms;
pub mod wiring;
