//! The envelope: a typed message plus the metadata that travels with it.
//!
//! On the wire (an SQS message body) it is `{"id","type","payload","meta"}`; the JSON
//! Schema in `docs/schemas/envelope.schema.json` is the contract for other languages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::HandlerError;

/// A payload with a stable type name. The name is a contract: messages already in a
/// queue carry it, so it must never follow a Rust type's name through a rename.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    const TYPE: &'static str;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub message_type: String,
    pub payload: Payload,
    pub meta: Meta,
}

/// A payload kept as the JSON text it arrived as: it is decoded once, into its type, by
/// the handler that takes it (not first into a generic JSON value, then again).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<serde_json::value::RawValue>);

impl Payload {
    /// Encodes a value as a payload.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The payload as a generic JSON value (for tests and tools, not the worker path).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for Payload {
    /// Same JSON, whatever the spacing.
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Ties together everything done for one unit of work (tick, message, send).
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
    /// Who dispatched it, e.g. `process-email-queue`.
    pub source: String,
    /// 1 on the first delivery; on receipt it is set from SQS `ApproximateReceiveCount`.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Ask the queue to hold the message until then (SQS `DelaySeconds`, at most 15 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<DateTime<Utc>>,
    /// When the unit was due (set by a scheduled tick): latency is counted from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    /// Set only on a dead-lettered envelope: why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetails>,
}

fn first_attempt() -> u32 {
    1
}

/// Why an envelope was given up on, as its dead letter says (`meta.error.kind`). On the
/// wire, its name (`"permanent"`, `"not-started"`...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeadLetterKind {
    /// The unit's own fault: trying again cannot succeed.
    Permanent,
    /// Handed over with no verdict: held for a person, never sent again by itself.
    UnknownOutcome,
    /// The body is not an envelope, or its payload is not its type.
    Malformed,
    /// Retried until the queue's receive count ran out; the reason is the last failure's.
    Exhausted,
    /// Never started on its last receive (too little time left, a blocked FIFO group).
    NotStarted,
    /// A retryable failure given up on at once (the queue's routes could not delay it).
    Retryable,
    /// A fault that was not the unit's, given up on at once.
    Infrastructure,
    /// A kind this version does not know (written by a newer one), kept as written.
    Other(String),
}

impl DeadLetterKind {
    /// Every kind this version writes, in the order `docs/schemas` lists them.
    pub const KNOWN: [DeadLetterKind; 7] = [
        Self::Permanent,
        Self::UnknownOutcome,
        Self::Malformed,
        Self::Exhausted,
        Self::NotStarted,
        Self::Retryable,
        Self::Infrastructure,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Self::Permanent => "permanent",
            Self::UnknownOutcome => "unknown-outcome",
            Self::Malformed => "malformed",
            Self::Exhausted => "exhausted",
            Self::NotStarted => "not-started",
            Self::Retryable => "retryable",
            Self::Infrastructure => "infrastructure",
            Self::Other(name) => name,
        }
    }

    /// The kind a wire name names; one this version does not know is kept as written.
    pub fn from_name(name: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .unwrap_or_else(|| Self::Other(name.to_owned()))
    }
}

impl Serialize for DeadLetterKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DeadLetterKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(Self::from_name(&name))
    }
}

impl From<crate::FailureKind> for DeadLetterKind {
    fn from(kind: crate::FailureKind) -> Self {
        match kind {
            crate::FailureKind::Intrinsic => Self::Permanent,
            crate::FailureKind::UnknownOutcome => Self::UnknownOutcome,
            crate::FailureKind::Transient => Self::Retryable,
            crate::FailureKind::Infrastructure => Self::Infrastructure,
        }
    }
}

impl std::fmt::Display for DeadLetterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an envelope was given up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    pub kind: DeadLetterKind,
    pub reason: String,
    pub attempts: u32,
    pub first_failure_at: DateTime<Utc>,
    pub last_failure_at: DateTime<Utc>,
    pub source_queue: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message body is not a valid envelope: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("message body is empty")]
    EmptyBody,
    #[error("payload of type {message_type} could not be encoded")]
    Encode {
        message_type: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl Envelope {
    /// Wraps a message for dispatch. `correlation_id` defaults to the new envelope's id.
    pub fn wrap<M: Message>(
        message: &M,
        source: &str,
        correlation_id: Option<String>,
    ) -> Result<Self, EnvelopeError> {
        let payload = Payload::from_value(message).map_err(|source| EnvelopeError::Encode {
            message_type: M::TYPE,
            source,
        })?;
        let id = uuid::Uuid::new_v4().to_string();
        Ok(Self {
            meta: Meta {
                correlation_id: correlation_id.unwrap_or_else(|| id.clone()),
                created_at: Utc::now(),
                source: source.to_owned(),
                attempt: 1,
                deliver_at: None,
                due_at: None,
                error: None,
            },
            id,
            message_type: M::TYPE.to_owned(),
            payload,
        })
    }

    pub fn from_body(body: Option<&str>) -> Result<Self, EnvelopeError> {
        match body {
            None | Some("") => Err(EnvelopeError::EmptyBody),
            Some(body) => serde_json::from_str(body).map_err(EnvelopeError::Malformed),
        }
    }

    pub fn to_body(&self) -> String {
        // A struct of strings, numbers and a JSON value cannot fail to serialise.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes the payload as `M`. A payload of the wrong shape can never succeed, so the
    /// error is permanent; serde's message names the offending field.
    pub fn decode<M: Message>(&self) -> Result<M, HandlerError> {
        serde_json::from_str::<M>(self.payload.get()).map_err(|error| {
            HandlerError::new(
                crate::error::FailureKind::Intrinsic,
                format!("invalid {} payload: {error}", M::TYPE),
                Some(Box::new(error)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_kinds_keep_their_wire_names_and_read_unknown_ones() {
        let wire: Vec<String> = DeadLetterKind::KNOWN
            .iter()
            .map(|kind| serde_json::to_string(kind).unwrap())
            .collect();
        assert_eq!(
            wire,
            [
                "\"permanent\"",
                "\"unknown-outcome\"",
                "\"malformed\"",
                "\"exhausted\"",
                "\"not-started\"",
                "\"retryable\"",
                "\"infrastructure\"",
            ]
        );
        for (kind, text) in DeadLetterKind::KNOWN.iter().zip(&wire) {
            assert_eq!(&serde_json::from_str::<DeadLetterKind>(text).unwrap(), kind);
        }
        let newer: DeadLetterKind = serde_json::from_str("\"quarantined\"").unwrap();
        assert_eq!(newer, DeadLetterKind::Other("quarantined".into()));
        assert_eq!(serde_json::to_string(&newer).unwrap(), "\"quarantined\"");
        assert_eq!(
            DeadLetterKind::from(crate::FailureKind::Intrinsic).as_str(),
            crate::FailureKind::Intrinsic.as_str()
        );
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Ping {
        user_id: String,
    }
    impl Message for Ping {
        const TYPE: &'static str = "Ping";
    }

    #[test]
    fn an_envelope_round_trips_through_its_body() {
        let envelope = Envelope::wrap(
            &Ping {
                user_id: "u1".into(),
            },
            "test",
            None,
        )
        .unwrap();
        let decoded = Envelope::from_body(Some(&envelope.to_body())).unwrap();
        assert_eq!(decoded, envelope);
        assert_eq!(decoded.meta.correlation_id, envelope.id);
        assert_eq!(
            decoded.decode::<Ping>().unwrap(),
            Ping {
                user_id: "u1".into()
            }
        );
    }

    #[test]
    fn the_wire_format_uses_the_documented_names() {
        let envelope = Envelope::wrap(
            &Ping {
                user_id: "u1".into(),
            },
            "test",
            Some("c-1".into()),
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(&envelope.to_body()).unwrap();
        assert_eq!(json["type"], "Ping");
        assert_eq!(json["payload"]["userId"], "u1");
        assert_eq!(json["meta"]["correlationId"], "c-1");
        assert_eq!(json["meta"]["attempt"], 1);
        assert!(json["meta"]["createdAt"].is_string());
    }

    #[test]
    fn a_malformed_body_is_a_clear_error() {
        let error = Envelope::from_body(Some("{not json")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("message body is not a valid envelope")
        );
        assert!(matches!(
            Envelope::from_body(None),
            Err(EnvelopeError::EmptyBody)
        ));
    }

    #[test]
    fn a_payload_of_the_wrong_shape_names_the_field_and_is_permanent() {
        let mut envelope = Envelope::wrap(
            &Ping {
                user_id: "u1".into(),
            },
            "test",
            None,
        )
        .unwrap();
        envelope.payload = Payload::from_value(&serde_json::json!({ "userId": 7 })).unwrap();
        let error = envelope.decode::<Ping>().unwrap_err();
        assert!(!crate::Retryable::is_retryable(&error));
        assert!(
            error.reason().contains("invalid Ping payload"),
            "{}",
            error.reason()
        );
        envelope.payload = Payload::from_value(&serde_json::json!({})).unwrap();
        assert!(
            envelope
                .decode::<Ping>()
                .unwrap_err()
                .reason()
                .contains("userId")
        );
    }
}
