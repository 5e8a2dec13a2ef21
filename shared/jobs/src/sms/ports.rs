//! What the SMS drip needs from the outside world, as traits. The enrollments table is
//! the lifecycle's ledger ([`symphony_core::Ledger`] of [`super::Enrollment`]).

use async_trait::async_trait;
use symphony_core::HandlerError;

use super::model::Sequence;
use symphony_core::ledger::StoreError;

/// Port: the sequences table.
#[async_trait]
pub trait SequenceStore: Send + Sync {
    async fn get(&self, sequence_id: &str) -> Result<Option<Sequence>, StoreError>;
}

/// Port: numbers that asked not to be texted.
#[async_trait]
pub trait OptOuts: Send + Sync {
    async fn is_opted_out(&self, phone: &str) -> Result<bool, StoreError>;
}

/// Port: sends one text message.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// The least time a send needs, to the answer and its record: a handler with less
    /// left before its deadline does not start it.
    fn least_time(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Returns the provider's message id.
    async fn send(&self, phone: &str, body: &str) -> Result<String, HandlerError>;
}
