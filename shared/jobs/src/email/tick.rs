//! The email queue's work source: queued emails that are due, claimed one by one in the
//! emails table. The tick is Symphony's generic [`Tick`] over the lifecycle's ledger.

use symphony_core::{LedgerWork, Tick};

use super::model::EmailRecord;

/// The function name recorded as each envelope's source.
pub const SOURCE: &str = "process-email-queue";

/// Due emails in the emails table.
pub type EmailWork = LedgerWork<EmailRecord>;

/// `process-email-queue`'s tick.
pub type EmailTick = Tick<EmailWork>;
