//! What the DynamoDB adapters share: `symphony-aws`'s table helpers and the core's store
//! error and transitions.

pub use symphony_aws::table::*;
pub use symphony_core::ledger::{
    MAX_REASON_BYTES as MAX_ERROR_BYTES, StoreError, Transition, truncate,
};
