//! The operations table: what operators read. Partition key `pk` (S), sort key `sk` (S),
//! TTL attribute `expiresAt` (N). It holds four kinds of item, each under its own
//! partition so a read is one query:
//!
//! | item | `pk` | `sk` |
//! | --- | --- | --- |
//! | one minute of one job's path | `metrics#<job>#<path>` | `2026-11-30T05:42Z` |
//! | a schedule's last tick | `heartbeat` | the function, `process-email-queue` |
//! | a dead-lettered message | `dead-letter#<DLQ name>` | its message id in the DLQ |
//! | a flag change | `flag-history` | `<time>#<flag>#<id>` |
//!
//! Minutes are written with `ADD`, so every invocation of the same minute adds to one
//! item: one write per sample, whatever the number of messages.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, DurationRound, Utc};
use symphony_core::metrics::{BUCKETS, Counts, Heartbeat, Histogram, MetricsSink, Sample};
use symphony_core::{HandlerError, Route};

use crate::AwsError;

type Item = HashMap<String, AttributeValue>;

/// Minutes are kept this long.
pub const METRICS_RETENTION: Duration = Duration::days(15);
/// Dead-letter entries outlive the queue's 14-day retention a little, so a reconciliation
/// sees each message's entry until the message itself is gone.
pub const DEAD_LETTER_RETENTION: Duration = Duration::days(15);
/// Flag history is kept a year.
pub const FLAG_HISTORY_RETENTION: Duration = Duration::days(365);

const HEARTBEAT: &str = "heartbeat";
const FLAG_HISTORY: &str = "flag-history";

/// One minute of one path of one job, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minute {
    pub at: DateTime<Utc>,
    pub counts: Counts,
    pub latency: Histogram,
    pub handle: Histogram,
}

/// A dead-lettered message, as the index keeps it (never its body).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterEntry {
    /// The dead-letter queue's name (`<stack>-email-dlq`).
    pub queue: String,
    pub message_id: String,
    pub message_type: Option<String>,
    pub unit_id: Option<String>,
    /// `meta.error.kind`, or `redriven-by-sqs` when SQS moved it after `maxReceiveCount`.
    pub kind: String,
    pub reason: Option<String>,
    pub attempts: Option<u32>,
    pub dead_lettered_at: DateTime<Utc>,
    /// Set once a person retried it: when, and who.
    pub retried_at: Option<DateTime<Utc>>,
    pub retried_by: Option<String>,
}

impl DeadLetterEntry {
    /// The entry of a message in the DLQ named `queue`: its type and unit read from the
    /// body when it is an envelope, and why it is there from its error details (none:
    /// SQS moved it after `maxReceiveCount`, so `redriven-by-sqs`, dated `now`).
    pub fn new(
        queue: &str,
        message_id: &str,
        body: &str,
        error: Option<&symphony_core::ErrorDetails>,
        now: DateTime<Utc>,
    ) -> Self {
        let envelope = symphony_core::Envelope::from_body(Some(body)).ok();
        Self {
            queue: queue.to_owned(),
            message_id: message_id.to_owned(),
            message_type: envelope.as_ref().map(|e| e.message_type.clone()),
            unit_id: envelope.as_ref().map(|e| e.meta.correlation_id.clone()),
            kind: error.map_or("redriven-by-sqs".to_owned(), |e| e.kind.as_str().to_owned()),
            reason: error.map(|e| e.reason.clone()).filter(|r| !r.is_empty()),
            attempts: error.map(|e| e.attempts),
            dead_lettered_at: error.map_or(now, |e| e.last_failure_at),
            retried_at: None,
            retried_by: None,
        }
    }
}

/// One change of a flag, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagChange {
    pub flag: String,
    pub at: DateTime<Utc>,
    pub who: String,
    /// `enabled/rollout` before and after, e.g. `on 100%`, `off 100%`, `absent`.
    pub from: String,
    pub to: String,
    pub why: String,
}

/// A flag as the flag table holds it (`None`: no item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagState {
    pub enabled: bool,
    pub rollout_percent: u8,
}

impl FlagState {
    pub fn describe(state: Option<Self>) -> String {
        match state {
            None => "absent".to_owned(),
            Some(state) => format!(
                "{} {}%",
                if state.enabled { "on" } else { "off" },
                state.rollout_percent
            ),
        }
    }
}

/// Why a flag change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FlagChangeError {
    /// Someone changed the flag between our read and our write: nothing was written.
    #[error(
        "flag {flag} changed while this change was being made; nothing was written, read it again"
    )]
    Raced { flag: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// The operations table.
#[derive(Debug, Clone)]
pub struct OperationsTable {
    client: Client,
    name: String,
}

impl OperationsTable {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sort key of the minute `at` falls in.
    pub fn minute_key(at: DateTime<Utc>) -> String {
        let minute = at.duration_trunc(Duration::minutes(1)).unwrap_or(at);
        minute.format("%Y-%m-%dT%H:%MZ").to_string()
    }

    fn series(job: &str, path: Route) -> String {
        format!("metrics#{job}#{path}")
    }

    /// Adds one sample to its minute.
    pub async fn add_sample(&self, sample: &Sample) -> Result<(), AwsError> {
        let mut adds = Vec::new();
        let mut values: Item = HashMap::new();
        // Every name goes through a placeholder: `processed` is one of DynamoDB's
        // reserved words, and others may become so.
        let mut names: HashMap<String, String> = HashMap::new();
        let mut add = |name: String, value: u64| {
            if value > 0 {
                let placeholder = format!("v{}", adds.len());
                adds.push(format!("#{placeholder} :{placeholder}"));
                values.insert(
                    format!(":{placeholder}"),
                    AttributeValue::N(value.to_string()),
                );
                names.insert(format!("#{placeholder}"), name);
            }
        };
        for (name, value) in sample.figures.counts.named() {
            add(name.to_owned(), value);
        }
        for (prefix, histogram) in [
            ("latency", &sample.figures.latency),
            ("handle", &sample.figures.handle),
        ] {
            for (bucket, count) in histogram.counts.iter().enumerate() {
                add(format!("{prefix}{bucket}"), *count);
            }
            add(format!("{prefix}SumMs"), histogram.sum_ms);
        }
        let expires = sample.at + METRICS_RETENTION;
        values.insert(
            ":expires".into(),
            AttributeValue::N(expires.timestamp().to_string()),
        );
        let mut expression = "SET expiresAt = :expires".to_owned();
        if !adds.is_empty() {
            expression.push_str(" ADD ");
            expression.push_str(&adds.join(", "));
        }
        self.client
            .update_item()
            .table_name(&self.name)
            .key(
                "pk",
                AttributeValue::S(Self::series(&sample.job, sample.path)),
            )
            .key("sk", AttributeValue::S(Self::minute_key(sample.at)))
            .update_expression(expression)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UpdateItem", e))?;
        Ok(())
    }

    /// The minutes of one path from `from` to `to` (both included), oldest first.
    pub async fn minutes(
        &self,
        job: &str,
        path: Route,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Minute>, AwsError> {
        let items = self
            .query(
                "pk = :pk AND sk BETWEEN :from AND :to",
                [
                    (":pk", Self::series(job, path)),
                    (":from", Self::minute_key(from)),
                    (":to", Self::minute_key(to)),
                ],
            )
            .await?;
        Ok(items.iter().filter_map(minute_of).collect())
    }

    /// Writes a schedule's heartbeat over the last one.
    pub async fn beat(&self, beat: &Heartbeat) -> Result<(), AwsError> {
        let summary: Item = beat
            .summary
            .iter()
            .map(|(name, value)| (name.clone(), AttributeValue::N(value.to_string())))
            .collect();
        self.client
            .put_item()
            .table_name(&self.name)
            .item("pk", AttributeValue::S(HEARTBEAT.into()))
            .item("sk", AttributeValue::S(beat.function.clone()))
            .item("job", AttributeValue::S(beat.job.clone()))
            .item("at", AttributeValue::S(beat.at.to_rfc3339()))
            .item(
                "durationMs",
                AttributeValue::N(beat.duration_ms.to_string()),
            )
            .item("ok", AttributeValue::Bool(beat.ok))
            .item("summary", AttributeValue::M(summary))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutItem", e))?;
        Ok(())
    }

    /// Every schedule's last heartbeat.
    pub async fn heartbeats(&self) -> Result<Vec<Heartbeat>, AwsError> {
        let items = self
            .query("pk = :pk", [(":pk", HEARTBEAT.to_owned())])
            .await?;
        Ok(items.iter().filter_map(heartbeat_of).collect())
    }

    /// Records a dead-lettered message (over any entry it had).
    pub async fn index_dead_letter(&self, entry: &DeadLetterEntry) -> Result<(), AwsError> {
        let mut item: Item = HashMap::new();
        let mut put = |name: &str, value: AttributeValue| {
            item.insert(name.to_owned(), value);
        };
        put(
            "pk",
            AttributeValue::S(format!("dead-letter#{}", entry.queue)),
        );
        put("sk", AttributeValue::S(entry.message_id.clone()));
        put("kind", AttributeValue::S(entry.kind.clone()));
        put(
            "deadLetteredAt",
            AttributeValue::S(entry.dead_lettered_at.to_rfc3339()),
        );
        let expires = entry.dead_lettered_at + DEAD_LETTER_RETENTION;
        put(
            "expiresAt",
            AttributeValue::N(expires.timestamp().to_string()),
        );
        for (name, value) in [
            ("messageType", &entry.message_type),
            ("unitId", &entry.unit_id),
            ("reason", &entry.reason),
            ("retriedBy", &entry.retried_by),
        ] {
            if let Some(value) = value {
                put(name, AttributeValue::S(value.clone()));
            }
        }
        if let Some(attempts) = entry.attempts {
            put("attempts", AttributeValue::N(attempts.to_string()));
        }
        if let Some(at) = entry.retried_at {
            put("retriedAt", AttributeValue::S(at.to_rfc3339()));
        }
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutItem", e))?;
        Ok(())
    }

    /// The index entries of one dead-letter queue (by name), retried ones included.
    pub async fn dead_letters(&self, queue: &str) -> Result<Vec<DeadLetterEntry>, AwsError> {
        let items = self
            .query("pk = :pk", [(":pk", format!("dead-letter#{queue}"))])
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| dead_letter_of(queue, item))
            .collect())
    }

    pub async fn remove_dead_letter(&self, queue: &str, message_id: &str) -> Result<(), AwsError> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(format!("dead-letter#{queue}")))
            .key("sk", AttributeValue::S(message_id.to_owned()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteItem", e))?;
        Ok(())
    }

    /// Sets a flag and writes its history in one transaction, only while the flag is
    /// still `from` (what the caller read): two operators cannot overwrite each other
    /// unseen.
    pub async fn change_flag(
        &self,
        flags_table: &str,
        from: Option<FlagState>,
        to: FlagState,
        change: &FlagChange,
    ) -> Result<(), FlagChangeError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let mut update = Update::builder()
            .table_name(flags_table)
            .key("name", AttributeValue::S(change.flag.clone()))
            // Names through placeholders: reserved words must never break a rollback.
            .update_expression(
                "SET #enabled = :enabled, #rollout = :rollout, #at = :at, #who = :who",
            )
            .expression_attribute_names("#enabled", "enabled")
            .expression_attribute_names("#rollout", "rolloutPercent")
            .expression_attribute_names("#at", "updatedAt")
            .expression_attribute_names("#who", "updatedBy")
            .expression_attribute_values(":enabled", AttributeValue::Bool(to.enabled))
            .expression_attribute_values(
                ":rollout",
                AttributeValue::N(to.rollout_percent.to_string()),
            )
            .expression_attribute_values(":at", AttributeValue::S(change.at.to_rfc3339()))
            .expression_attribute_values(":who", AttributeValue::S(change.who.clone()));
        update = match from {
            None => update.condition_expression("attribute_not_exists(#name)"),
            // An item without `rolloutPercent` reads as 100 %: only then may it be absent.
            Some(state) => update
                .condition_expression(if state.rollout_percent == 100 {
                    "#enabled = :was_enabled AND (#rollout = :was_rollout OR attribute_not_exists(#rollout))"
                } else {
                    "#enabled = :was_enabled AND #rollout = :was_rollout"
                })
                .expression_attribute_values(":was_enabled", AttributeValue::Bool(state.enabled))
                .expression_attribute_values(
                    ":was_rollout",
                    AttributeValue::N(state.rollout_percent.to_string()),
                ),
        };
        if from.is_none() {
            update = update.expression_attribute_names("#name", "name");
        }
        let update = update
            .build()
            .map_err(|e| AwsError::invalid_request("TransactWriteItems", e))?;
        let expires = change.at + FLAG_HISTORY_RETENTION;
        let history = Put::builder()
            .table_name(&self.name)
            .item("pk", AttributeValue::S(FLAG_HISTORY.into()))
            .item(
                "sk",
                AttributeValue::S(format!(
                    "{}#{}#{}",
                    change
                        .at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    change.flag,
                    uuid::Uuid::new_v4().simple()
                )),
            )
            .item("flag", AttributeValue::S(change.flag.clone()))
            .item("at", AttributeValue::S(change.at.to_rfc3339()))
            .item("who", AttributeValue::S(change.who.clone()))
            .item("from", AttributeValue::S(change.from.clone()))
            .item("to", AttributeValue::S(change.to.clone()))
            .item("why", AttributeValue::S(change.why.clone()))
            .item(
                "expiresAt",
                AttributeValue::N(expires.timestamp().to_string()),
            )
            .build()
            .map_err(|e| AwsError::invalid_request("TransactWriteItems", e))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(history).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                // Cancelled because the flag's condition failed: someone changed it. Any
                // other cancellation (a conflict, throttling) is an AWS error to retry.
                let raced = match error.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
                        .cancellation_reasons()
                        .iter()
                        .any(|reason| reason.code() == Some("ConditionalCheckFailed")),
                    _ => false,
                };
                if raced {
                    return Err(FlagChangeError::Raced {
                        flag: change.flag.clone(),
                    });
                }
                Err(AwsError::from_sdk("TransactWriteItems", error).into())
            }
        }
    }

    /// Flag changes, newest first; only `flag`'s when given.
    pub async fn flag_history(&self, flag: Option<&str>) -> Result<Vec<FlagChange>, AwsError> {
        let items = self
            .query("pk = :pk", [(":pk", FLAG_HISTORY.to_owned())])
            .await?;
        let mut changes: Vec<FlagChange> = items
            .iter()
            .filter_map(flag_change_of)
            .filter(|change| flag.is_none_or(|flag| change.flag == flag))
            .collect();
        changes.sort_by_key(|change| std::cmp::Reverse(change.at));
        Ok(changes)
    }

    async fn query<const N: usize>(
        &self,
        condition: &str,
        values: [(&str, String); N],
    ) -> Result<Vec<Item>, AwsError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression(condition)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            for (name, value) in &values {
                request =
                    request.expression_attribute_values(*name, AttributeValue::S(value.clone()));
            }
            let page = request
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Query", e))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

/// The longest an index write may hold up a dead letter's caller.
pub const INDEX_WRITE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Indexes what a worker or a tick dead-lettered, so operators can find it by id.
#[derive(Debug, Clone)]
pub struct DeadLetterIndex {
    table: OperationsTable,
    queue: String,
}

impl DeadLetterIndex {
    /// The index of the dead-letter queue at `dead_letter_url` (named by its last segment).
    pub fn new(table: OperationsTable, dead_letter_url: &str) -> Self {
        Self {
            table,
            queue: queue_name(dead_letter_url).to_owned(),
        }
    }

    /// Records a message just sent to the queue. A failure is said at WARN and changes
    /// nothing for the unit: `symphony dlq list` reconciles the index with the queue.
    pub async fn add(&self, message_id: &str, body: &str, details: &symphony_core::ErrorDetails) {
        let entry = DeadLetterEntry::new(&self.queue, message_id, body, Some(details), Utc::now());
        // The unit is settled by the dead letter itself: a slow index write must not hold
        // up the batch's answer.
        match tokio::time::timeout(INDEX_WRITE_LIMIT, self.table.index_dead_letter(&entry)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(message_id, error = %symphony_core::error::chain(&error), "could not index a dead letter; `symphony dlq list` will")
            }
            Err(_) => {
                tracing::warn!(
                    message_id,
                    "dead letter not indexed in time; `symphony dlq list` will"
                )
            }
        }
    }
}

/// A queue's name: the last segment of its URL.
pub fn queue_name(queue_url: &str) -> &str {
    queue_url.rsplit('/').next().unwrap_or(queue_url)
}

#[async_trait]
impl MetricsSink for OperationsTable {
    async fn record(&self, samples: &[Sample]) -> Result<(), HandlerError> {
        for sample in samples {
            self.add_sample(sample)
                .await
                .map_err(|e| HandlerError::from_source("writing metrics", e))?;
        }
        Ok(())
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), HandlerError> {
        self.beat(beat)
            .await
            .map_err(|e| HandlerError::from_source("writing the heartbeat", e))
    }
}

fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name)? {
        AttributeValue::N(value) => value.parse().ok(),
        _ => None,
    }
}

fn string(item: &Item, name: &str) -> Option<String> {
    match item.get(name)? {
        AttributeValue::S(value) => Some(value.clone()),
        _ => None,
    }
}

fn time(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&string(item, name)?)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

fn minute_of(item: &Item) -> Option<Minute> {
    let key = string(item, "sk")?;
    let at = chrono::NaiveDateTime::parse_from_str(&key, "%Y-%m-%dT%H:%MZ")
        .ok()?
        .and_utc();
    let mut minute = Minute {
        at,
        ..Minute::default()
    };
    for (name, _) in Counts::default().named() {
        minute
            .counts
            .set_named(name, number(item, name).unwrap_or(0));
    }
    for (prefix, histogram) in [
        ("latency", &mut minute.latency),
        ("handle", &mut minute.handle),
    ] {
        for bucket in 0..BUCKETS {
            histogram.counts[bucket] = number(item, &format!("{prefix}{bucket}")).unwrap_or(0);
        }
        histogram.sum_ms = number(item, &format!("{prefix}SumMs")).unwrap_or(0);
    }
    Some(minute)
}

fn heartbeat_of(item: &Item) -> Option<Heartbeat> {
    let summary: BTreeMap<String, u64> = match item.get("summary") {
        Some(AttributeValue::M(map)) => map
            .iter()
            .filter_map(|(name, value)| match value {
                AttributeValue::N(n) => Some((name.clone(), n.parse().ok()?)),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    Some(Heartbeat {
        function: string(item, "sk")?,
        job: string(item, "job").unwrap_or_default(),
        at: time(item, "at")?,
        duration_ms: number(item, "durationMs").unwrap_or(0),
        ok: matches!(item.get("ok"), Some(AttributeValue::Bool(true))),
        summary,
    })
}

fn dead_letter_of(queue: &str, item: &Item) -> Option<DeadLetterEntry> {
    Some(DeadLetterEntry {
        queue: queue.to_owned(),
        message_id: string(item, "sk")?,
        message_type: string(item, "messageType"),
        unit_id: string(item, "unitId"),
        kind: string(item, "kind").unwrap_or_default(),
        reason: string(item, "reason"),
        attempts: number(item, "attempts").and_then(|n| u32::try_from(n).ok()),
        dead_lettered_at: time(item, "deadLetteredAt")?,
        retried_at: time(item, "retriedAt"),
        retried_by: string(item, "retriedBy"),
    })
}

fn flag_change_of(item: &Item) -> Option<FlagChange> {
    Some(FlagChange {
        flag: string(item, "flag")?,
        at: time(item, "at")?,
        who: string(item, "who").unwrap_or_default(),
        from: string(item, "from").unwrap_or_default(),
        to: string(item, "to").unwrap_or_default(),
        why: string(item, "why").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_key_names_the_minute_and_sorts_as_time_does() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T05:42:59.9Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(OperationsTable::minute_key(at), "2026-11-30T05:42Z");
        let later = at + Duration::minutes(20);
        assert!(OperationsTable::minute_key(at) < OperationsTable::minute_key(later));
    }

    #[test]
    fn a_stored_minute_reads_back_with_its_counts_and_buckets() {
        let mut item: Item = HashMap::new();
        item.insert("sk".into(), AttributeValue::S("2026-11-30T05:42Z".into()));
        item.insert("succeeded".into(), AttributeValue::N("7".into()));
        item.insert("failedUnknown".into(), AttributeValue::N("1".into()));
        item.insert("latency3".into(), AttributeValue::N("7".into()));
        item.insert("latencySumMs".into(), AttributeValue::N("2800".into()));
        let minute = minute_of(&item).unwrap();
        assert_eq!(minute.counts.succeeded, 7);
        assert_eq!(minute.counts.failed_unknown, 1);
        assert_eq!(minute.latency.count(), 7);
        assert_eq!(minute.latency.mean_ms(), Some(400));
        assert_eq!(minute.handle.count(), 0);
    }
}
