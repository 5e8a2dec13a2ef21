//! Handlers and the registry that finds one by a message's stable type name.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;

use crate::{Envelope, HandlerError, Message, Route};

/// What a handler knows about the delivery it is running in.
#[derive(Debug, Clone)]
pub struct HandlerContext {
    /// Symphony (an SQS worker) or legacy (inline in a scheduled tick).
    pub route: Route,
    /// The request id of the Lambda invocation, for logs.
    pub request_id: String,
    /// When the invocation will be stopped, if it will be.
    pub deadline: Option<std::time::Instant>,
}

impl HandlerContext {
    pub fn new(route: Route, request_id: impl Into<String>) -> Self {
        Self {
            route,
            request_id: request_id.into(),
            deadline: None,
        }
    }

    pub fn with_deadline(mut self, deadline: std::time::Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Refuses to start work that needs `needed` when less is left before the deadline:
    /// a retryable failure, so the unit comes back, with nothing handed over.
    /// `now` is read from the caller's clock.
    pub fn ensure_time_for(
        &self,
        needed: std::time::Duration,
        now: std::time::Instant,
    ) -> Result<(), HandlerError> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(now);
        if left < needed {
            return Err(HandlerError::retryable(format!(
                "not started: {} ms of the invocation were left, under the {} ms a send needs",
                left.as_millis(),
                needed.as_millis()
            )));
        }
        Ok(())
    }
}

/// Handles one envelope of any type; the registry stores these.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    async fn handle(
        &self,
        envelope: &Envelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError>;
}

/// Handles one typed message; what job code implements.
#[async_trait]
pub trait TypedHandler<M: Message>: Send + Sync {
    async fn handle(
        &self,
        message: M,
        envelope: &Envelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError>;
}

/// Decodes the payload, then calls the typed handler.
struct Decoding<M, H> {
    handler: H,
    message: PhantomData<fn() -> M>,
}

#[async_trait]
impl<M: Message, H: TypedHandler<M>> MessageHandler for Decoding<M, H> {
    async fn handle(
        &self,
        envelope: &Envelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        let message = envelope.decode::<M>()?;
        self.handler.handle(message, envelope, context).await
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a handler for message type {0} is already registered")]
pub struct DuplicateHandler(pub String);

/// Message type name → handler.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: HashMap<String, Arc<dyn MessageHandler>>,
}

impl fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerRegistry")
            .field("types", &self.types())
            .finish()
    }
}

impl HandlerRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the handler of `M`, under `M::TYPE`.
    pub fn register<M, H>(mut self, handler: H) -> Result<Self, DuplicateHandler>
    where
        M: Message,
        H: TypedHandler<M> + 'static,
    {
        if self.handlers.contains_key(M::TYPE) {
            return Err(DuplicateHandler(M::TYPE.to_owned()));
        }
        let decoding = Decoding {
            handler,
            message: PhantomData,
        };
        self.handlers.insert(M::TYPE.to_owned(), Arc::new(decoding));
        Ok(self)
    }

    pub fn types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        types.sort_unstable();
        types
    }

    /// Runs the envelope's handler. An unknown type is a permanent error, and so is a
    /// panic: it is caught here so that it fails this envelope alone, never its batch.
    pub async fn dispatch(
        &self,
        envelope: &Envelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        let Some(handler) = self.handlers.get(&envelope.message_type) else {
            return Err(HandlerError::permanent(format!(
                "unknown message type {:?}; this worker handles {:?}",
                envelope.message_type,
                self.types()
            )));
        };
        match AssertUnwindSafe(handler.handle(envelope, context))
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => Err(HandlerError::permanent(format!(
                "handler for {} panicked: {}",
                envelope.message_type,
                panic_text(panic.as_ref())
            ))),
        }
    }
}

/// The message of a caught panic, when it has one.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "non-text panic payload"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Retryable;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Boom {
        panic: bool,
    }
    impl Message for Boom {
        const TYPE: &'static str = "Boom";
    }

    struct BoomHandler;
    #[async_trait]
    impl TypedHandler<Boom> for BoomHandler {
        async fn handle(
            &self,
            message: Boom,
            _: &Envelope,
            _: &HandlerContext,
        ) -> Result<(), HandlerError> {
            assert!(!message.panic, "boom requested");
            Ok(())
        }
    }

    fn context() -> HandlerContext {
        HandlerContext::new(Route::Symphony, "req-1")
    }

    #[tokio::test]
    async fn an_unknown_type_is_a_permanent_error_naming_the_type() {
        let registry = HandlerRegistry::new().register(BoomHandler).unwrap();
        let mut envelope = Envelope::wrap(&Boom { panic: false }, "test", None).unwrap();
        envelope.message_type = "Nope".into();
        let error = registry.dispatch(&envelope, &context()).await.unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.reason().contains("\"Nope\""));
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_permanent_error() {
        let registry = HandlerRegistry::new().register(BoomHandler).unwrap();
        let envelope = Envelope::wrap(&Boom { panic: true }, "test", None).unwrap();
        let error = registry.dispatch(&envelope, &context()).await.unwrap_err();
        assert!(!error.is_retryable());
        assert!(
            error.reason().contains("boom requested"),
            "{}",
            error.reason()
        );
    }

    #[test]
    fn a_type_registers_once() {
        let registry = HandlerRegistry::new().register(BoomHandler).unwrap();
        assert!(registry.register(BoomHandler).is_err());
    }
}
