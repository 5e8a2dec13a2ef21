//! Symphony core: the envelope, the handler registry, batch processing into a partial
//! batch response, flag evaluation and the ports (traits) adapters implement.
//!
//! Nothing here talks to AWS: adapters live in `symphony-aws`, jobs in `symphony-jobs`.

pub mod batch;
pub mod clock;
pub mod config;
pub mod envelope;
pub mod error;
pub mod flags;
pub mod handler;
pub mod ledger;
pub mod metrics;
pub mod redact;
pub mod retry;
pub mod tick;
pub mod transport;

pub use batch::{BatchProcessor, BatchReport, RecordError};
pub use clock::{Clock, FixedClock, SystemClock};
pub use envelope::{DeadLetterKind, Envelope, EnvelopeError, ErrorDetails, Message, Meta, Payload};
pub use error::{BoxError, FailureKind, HandlerError, Retryable};
pub use flags::{FlagEvaluation, FlagReader, FlagStore, Route};
pub use handler::{HandlerContext, HandlerRegistry, MessageHandler, TypedHandler};
pub use ledger::{
    Ending, Ledger, LedgerRecord, LedgerWork, MemoryLedger, Next, Progress, StatusNames,
    StoreError, Transition, UnitState, Verdict,
};
pub use metrics::{Heartbeat, MetricsSink, Sample};
pub use retry::{FailureRouteError, FailureRoutes, RetryPolicy};
pub use tick::{Claim, Due, HeldLetters, Quarantined, Tick, TickError, TickReport, WorkSource};
pub use transport::{Delivery, Dispatcher, SyncTransport, Transport, TransportError};
