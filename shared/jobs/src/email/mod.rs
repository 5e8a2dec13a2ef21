//! The email queue: `process-email-queue` dispatches due emails, `handle-email` sends them.

pub mod handler;
pub mod message;
pub mod model;
pub mod ports;
pub mod tick;

pub use handler::SendEmailHandler;
pub use message::EmailMessage;
pub use model::{EmailRecord, EmailStatus, Mailbox, SmtpSecurity};
pub use tick::{EmailTick, EmailWork};

/// The job's flag in the flag table.
pub const EMAIL_FLAG: &str = "SYMPHONY_EMAIL_QUEUE_ENABLED";
