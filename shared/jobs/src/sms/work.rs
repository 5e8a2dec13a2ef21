//! `process-sms-drip`'s work source: active enrollments whose next step is due, over the
//! lifecycle's ledger.

use symphony_core::{LedgerWork, Tick};

use super::model::Enrollment;

/// The function name recorded as each envelope's source.
pub const SOURCE: &str = "process-sms-drip";

/// Due enrollments in the enrollments table.
pub type SmsWork = LedgerWork<Enrollment>;

pub type SmsTick = Tick<SmsWork>;
