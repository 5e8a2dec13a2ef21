//! The SMS drip: `process-sms-drip` dispatches one message per due enrollment,
//! `handle-sms` sends the step's text through Amazon SNS.

pub mod handler;
pub mod message;
pub mod model;
pub mod ports;
pub mod work;

pub use handler::SendSmsHandler;
pub use message::SmsDripMessage;
pub use model::{Enrollment, EnrollmentStatus, Sequence, SmsStep};
pub use work::{SmsTick, SmsWork};

/// The job's flag in the flag table.
pub const SMS_FLAG: &str = "SYMPHONY_SMS_DRIP_ENABLED";
