//! What happens to a record that failed: a retryable one comes back later, after a backoff
//! that grows with the attempt; a permanent one goes to the dead-letter queue at once.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;

use crate::envelope::ErrorDetails;
use crate::{BoxError, Retryable};

/// Exponential backoff with jitter and a cap: attempt n waits between half and all of
/// `min(cap, base × 2^(n−1))`. On the last attempt, a retryable failure goes to the
/// dead-letter queue with its reason, rather than back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// The source queue's `maxReceiveCount`: past it SQS would move the message to the
    /// DLQ itself, without a word of why. `None`: no limit known.
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(900),
            max_attempts: None,
        }
    }
}

impl RetryPolicy {
    /// Whether attempt `attempt` is the last one the queue allows.
    pub fn is_last(&self, attempt: u32) -> bool {
        self.max_attempts.is_some_and(|max| attempt >= max)
    }

    /// The ceiling of attempt `attempt` (1 for the first delivery).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }

    /// How long attempt `attempt`'s record stays away before it comes back.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_millis()).unwrap_or(u64::MAX);
        // Jitter spreads retries of a failing batch, so they do not all return at once.
        half + Duration::from_millis(fastrand::u64(0..=spread))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct FailureRouteError {
    pub reason: String,
    #[source]
    pub source: Option<BoxError>,
}

impl Retryable for FailureRouteError {
    fn is_retryable(&self) -> bool {
        true
    }
}

/// Port: where failed records go. The SQS adapter moves them on the queues themselves.
#[async_trait]
pub trait FailureRoutes: Send + Sync {
    /// Puts a record that can never succeed on the dead-letter queue, with why. Once this
    /// returns Ok, the record is acknowledged.
    async fn dead_letter(
        &self,
        record: &SqsMessage,
        details: &ErrorDetails,
    ) -> Result<(), FailureRouteError>;
    /// Keeps a record that failed for now away for `delay`.
    async fn retry_later(
        &self,
        record: &SqsMessage,
        delay: Duration,
    ) -> Result<(), FailureRouteError>;
    /// The queue's current `maxReceiveCount`, when the routes know it: it overrides the
    /// policy's last attempt, so a redrive policy changed in place is followed.
    async fn max_receive_count(&self) -> Option<u32> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_grows_with_the_attempt_has_jitter_and_a_cap() {
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(60),
            max_attempts: Some(5),
        };
        assert!(!policy.is_last(4) && policy.is_last(5) && policy.is_last(6));
        assert!(!RetryPolicy::default().is_last(u32::MAX));
        assert_eq!(policy.ceiling(1), Duration::from_secs(10));
        assert_eq!(policy.ceiling(2), Duration::from_secs(20));
        assert_eq!(policy.ceiling(3), Duration::from_secs(40));
        assert_eq!(policy.ceiling(4), Duration::from_secs(60));
        assert_eq!(policy.ceiling(400), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..200).map(|_| policy.delay(3)).collect();
        assert!(
            delays
                .iter()
                .all(|d| (Duration::from_secs(20)..=Duration::from_secs(40)).contains(d))
        );
        assert!(delays.iter().any(|d| *d != delays[0]), "no jitter");
    }
}
