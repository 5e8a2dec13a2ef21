//! What the jobs' DynamoDB adapters share, from `symphony-aws` and the core's ledger.

pub use symphony_aws::table::*;
pub use symphony_core::ledger::{
    MAX_REASON_BYTES as MAX_ERROR_BYTES, StoreError, Transition, truncate,
};
