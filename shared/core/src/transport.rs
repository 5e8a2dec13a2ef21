//! Where dispatched envelopes go: a queue (the symphony path) or straight into the
//! handler, one after another (the legacy path).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{
    BoxError, Envelope, FailureKind, HandlerContext, HandlerError, HandlerRegistry, Retryable,
    Route,
};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Can never be sent as it is: the unit needs a fix, not a retry.
    #[error("message {envelope_id} is {size} bytes, over the queue's limit of {limit} bytes")]
    TooLarge {
        envelope_id: String,
        size: usize,
        limit: usize,
    },
    /// The queue refused this entry of a batch (`Failed` in `SendMessageBatch`).
    #[error("the queue rejected message {envelope_id}: {code}: {message}")]
    Rejected {
        envelope_id: String,
        code: String,
        message: String,
        /// The service says the request was at fault: resending it unchanged won't help.
        sender_fault: bool,
    },
    /// The request itself failed (network, throttling, permissions...).
    #[error("sending to the queue failed")]
    Request {
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// The transport returned no result for this envelope; treated as not sent.
    #[error("no delivery result was returned for message {envelope_id}")]
    Missing { envelope_id: String },
    /// The legacy path ran the handler inline and it failed.
    #[error(transparent)]
    Handler(#[from] HandlerError),
}

impl Retryable for TransportError {
    fn is_retryable(&self) -> bool {
        self.failure_kind().is_retryable()
    }

    /// A queue that cannot be reached, refuses access or does not exist is the
    /// infrastructure's fault, never the unit's: the unit is released for the next tick.
    /// Only a message the queue can never take as it is fails the unit.
    fn failure_kind(&self) -> FailureKind {
        match self {
            Self::TooLarge { .. } => FailureKind::Intrinsic,
            Self::Rejected { sender_fault, .. } if *sender_fault => FailureKind::Intrinsic,
            Self::Rejected { .. } | Self::Request { .. } | Self::Missing { .. } => {
                FailureKind::Infrastructure
            }
            Self::Handler(error) => error.kind,
        }
    }
}

/// The result for one envelope.
#[derive(Debug)]
pub struct Delivery {
    pub envelope_id: String,
    pub result: Result<(), TransportError>,
}

/// Port: sends envelopes somewhere.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends every envelope and returns one delivery per envelope.
    async fn send(&self, envelopes: Vec<Envelope>) -> Vec<Delivery>;

    /// The same, within an invocation that ends at `deadline`: a transport that does the
    /// work inline starts nothing it cannot finish. A queue needs no deadline.
    async fn send_until(
        &self,
        envelopes: Vec<Envelope>,
        _deadline: Option<Instant>,
    ) -> Vec<Delivery> {
        self.send(envelopes).await
    }
}

/// The legacy path starts no envelope with less than this left of the invocation.
pub const LEGACY_START_MARGIN: Duration = Duration::from_secs(5);

/// The legacy path: each envelope runs through the registry inline, one after another,
/// as the old cron route did.
#[derive(Debug, Clone)]
pub struct SyncTransport {
    registry: Arc<HandlerRegistry>,
}

impl SyncTransport {
    pub fn new(registry: Arc<HandlerRegistry>) -> Self {
        Self { registry }
    }
}

#[async_trait]
impl Transport for SyncTransport {
    async fn send(&self, envelopes: Vec<Envelope>) -> Vec<Delivery> {
        self.send_until(envelopes, None).await
    }

    /// Each handler runs with the invocation's deadline; once less than
    /// [`LEGACY_START_MARGIN`] is left, the rest are not started (retryable: their units
    /// are released for the next tick).
    async fn send_until(
        &self,
        envelopes: Vec<Envelope>,
        deadline: Option<Instant>,
    ) -> Vec<Delivery> {
        let mut deliveries = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let mut context =
                HandlerContext::new(Route::Legacy, envelope.meta.correlation_id.clone());
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left < LEGACY_START_MARGIN {
                    deliveries.push(Delivery {
                        envelope_id: envelope.id,
                        result: Err(TransportError::Handler(HandlerError::retryable(format!(
                            "not started: {} ms of the invocation were left, under the {} ms margin",
                            left.as_millis(),
                            LEGACY_START_MARGIN.as_millis()
                        )))),
                    });
                    continue;
                }
                context = context.with_deadline(deadline);
            }
            let result = self.registry.dispatch(&envelope, &context).await;
            deliveries.push(Delivery {
                envelope_id: envelope.id,
                result: result.map_err(TransportError::from),
            });
        }
        deliveries
    }
}

/// Sends through a transport and accounts for every envelope: whatever a transport
/// returns, the caller gets exactly one delivery per envelope, in the order given.
#[derive(Clone)]
pub struct Dispatcher {
    transport: Arc<dyn Transport>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self { transport }
    }

    pub async fn dispatch(&self, envelopes: Vec<Envelope>) -> Vec<Delivery> {
        self.dispatch_until(envelopes, None).await
    }

    /// [`Self::dispatch`] within an invocation that ends at `deadline`.
    pub async fn dispatch_until(
        &self,
        envelopes: Vec<Envelope>,
        deadline: Option<Instant>,
    ) -> Vec<Delivery> {
        let ids: Vec<String> = envelopes.iter().map(|e| e.id.clone()).collect();
        let mut by_id: HashMap<String, Result<(), TransportError>> = self
            .transport
            .send_until(envelopes, deadline)
            .await
            .into_iter()
            .map(|d| (d.envelope_id, d.result))
            .collect();
        ids.into_iter()
            .map(|id| {
                let result = by_id.remove(&id).unwrap_or_else(|| {
                    Err(TransportError::Missing {
                        envelope_id: id.clone(),
                    })
                });
                Delivery {
                    envelope_id: id,
                    result,
                }
            })
            .collect()
    }
}

/// A queue in memory: it accepts every envelope and keeps it, for fast tests of what
/// dispatches; or, told to, refuses every send as a queue that denies access does.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: std::sync::Mutex<Vec<Envelope>>,
    refusing: std::sync::atomic::AtomicBool,
}

impl MemoryQueue {
    /// From now on every send is refused (AccessDenied).
    pub fn refuse(&self) {
        self.refusing
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every envelope it accepted, in order.
    pub fn sent(&self) -> Vec<Envelope> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Transport for MemoryQueue {
    async fn send(&self, envelopes: Vec<Envelope>) -> Vec<Delivery> {
        if self.refusing.load(std::sync::atomic::Ordering::SeqCst) {
            return envelopes
                .iter()
                .map(|envelope| Delivery {
                    envelope_id: envelope.id.clone(),
                    result: Err(TransportError::Request {
                        retryable: false,
                        source: "AccessDenied: the memory queue refuses sends".into(),
                    }),
                })
                .collect();
        }
        let deliveries = envelopes
            .iter()
            .map(|envelope| Delivery {
                envelope_id: envelope.id.clone(),
                result: Ok(()),
            })
            .collect();
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(envelopes);
        deliveries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, TypedHandler};
    use serde::{Deserialize, Serialize};
    use std::sync::Mutex;

    #[derive(Debug, Serialize, Deserialize)]
    struct Note(u32);
    impl Message for Note {
        const TYPE: &'static str = "Note";
    }

    /// Drops every second envelope, as a buggy adapter might.
    struct Lossy;
    #[async_trait]
    impl Transport for Lossy {
        async fn send(&self, envelopes: Vec<Envelope>) -> Vec<Delivery> {
            envelopes
                .into_iter()
                .step_by(2)
                .map(|e| Delivery {
                    envelope_id: e.id,
                    result: Ok(()),
                })
                .collect()
        }
    }

    #[tokio::test]
    async fn an_envelope_a_transport_forgets_is_reported_not_lost() {
        let envelopes: Vec<Envelope> = (0..4)
            .map(|i| Envelope::wrap(&Note(i), "t", None).unwrap())
            .collect();
        let deliveries = Dispatcher::new(Arc::new(Lossy))
            .dispatch(envelopes.clone())
            .await;
        assert_eq!(deliveries.len(), 4);
        assert!(deliveries[0].result.is_ok());
        assert!(matches!(
            deliveries[1].result,
            Err(TransportError::Missing { .. })
        ));
        assert!(deliveries[1].result.as_ref().unwrap_err().is_retryable());
        assert_eq!(deliveries[3].envelope_id, envelopes[3].id);
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<(u32, Route)>>);
    #[async_trait]
    impl TypedHandler<Note> for Arc<Seen> {
        async fn handle(
            &self,
            note: Note,
            _: &Envelope,
            context: &HandlerContext,
        ) -> Result<(), HandlerError> {
            self.0.lock().unwrap().push((note.0, context.route));
            if note.0 == 1 {
                Err(HandlerError::retryable("later"))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn the_sync_transport_runs_handlers_inline_in_order_on_the_legacy_route() {
        let seen = Arc::new(Seen::default());
        let registry = Arc::new(HandlerRegistry::new().register(seen.clone()).unwrap());
        let envelopes: Vec<Envelope> = (0..3)
            .map(|i| Envelope::wrap(&Note(i), "t", None).unwrap())
            .collect();
        let deliveries = Dispatcher::new(Arc::new(SyncTransport::new(registry)))
            .dispatch(envelopes)
            .await;
        assert_eq!(
            *seen.0.lock().unwrap(),
            [(0, Route::Legacy), (1, Route::Legacy), (2, Route::Legacy)]
        );
        assert!(deliveries[1].result.as_ref().unwrap_err().is_retryable());
        assert!(deliveries[2].result.is_ok());
    }
}
