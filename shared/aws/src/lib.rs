//! Symphony's AWS adapters: the SQS transport, the DynamoDB flag store, and the
//! classification of SDK errors into retryable and permanent.

pub mod dead_letters;
pub mod failures;
pub mod flags;
pub mod lambda;
pub mod ledger;
pub mod operations;
pub mod sdk;
pub mod sqs;
pub mod table;
pub mod telemetry;

pub use dead_letters::{DeadLetter, DeadLetterQueue, RedriveReport};
pub use failures::{SqsFailureRoutes, SqsHeldLetters};
pub use flags::DynamoFlagStore;
pub use lambda::{ScheduledFunction, SqsWorker};
pub use ledger::{DynamoLedger, LedgerLayout};
pub use operations::OperationsTable;
pub use sdk::{AwsError, load_sdk_config};
pub use sqs::{KnownQueueLimits, SqsLimits, SqsTransport};
