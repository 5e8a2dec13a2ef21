//! What an operator reads about a deployment: its flags, queues, held units, schedules
//! and per-minute figures. `symphony-api` serves it over HTTP and the `symphony` CLI
//! prints it; both read the same resources, named after the stack as `template.yaml`
//! names them.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, Utc};
use serde::Serialize;
use symphony_aws::AwsError;
use symphony_aws::flags::parse_flag;
use symphony_aws::operations::{FlagState, OperationsTable};
use symphony_core::Route;
use symphony_core::flags::GLOBAL_FLAG;
use symphony_core::metrics::{Counts, Histogram};

/// A job as operations see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSpec {
    /// As in queue names, metrics and on the command line: `email`, `campaign`, `sms`.
    pub name: &'static str,
    /// Its flag in the flag table.
    pub flag: &'static str,
    pub tick_function: &'static str,
    pub worker_function: &'static str,
    /// The variable holding its schedule expression, and the template's default.
    pub schedule_variable: &'static str,
    pub default_schedule: &'static str,
    /// Its ledger table (after the stack name) and the status index, when its units can
    /// be held as unknown outcomes.
    pub ledger: Option<LedgerSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerSpec {
    pub table_suffix: &'static str,
    pub status_index: &'static str,
}

pub const JOBS: [JobSpec; 3] = [
    JobSpec {
        name: <crate::job::EmailJob as crate::job::Job>::NAME,
        flag: <crate::job::EmailJob as crate::job::Job>::FLAG,
        tick_function: "process-email-queue",
        worker_function: "handle-email",
        schedule_variable: "EMAIL_SCHEDULE",
        default_schedule: "rate(1 minute)",
        ledger: Some(LedgerSpec {
            table_suffix: "emails",
            status_index: "byStatusDueAt",
        }),
    },
    JobSpec {
        name: <crate::job::CampaignJob as crate::job::Job>::NAME,
        flag: <crate::job::CampaignJob as crate::job::Job>::FLAG,
        tick_function: "process-campaigns",
        worker_function: "handle-campaign",
        schedule_variable: "CAMPAIGN_SCHEDULE",
        default_schedule: "rate(5 minutes)",
        ledger: None,
    },
    JobSpec {
        name: <crate::job::SmsJob as crate::job::Job>::NAME,
        flag: <crate::job::SmsJob as crate::job::Job>::FLAG,
        tick_function: "process-sms-drip",
        worker_function: "handle-sms",
        schedule_variable: "SMS_SCHEDULE",
        default_schedule: "rate(5 minutes)",
        ledger: Some(LedgerSpec {
            table_suffix: "sms-enrollments",
            status_index: "byStatusNextSendAt",
        }),
    },
];

/// The job called `name` (`email`, `campaign`, `sms`) or flagged `name`.
pub fn job_named(name: &str) -> Option<&'static JobSpec> {
    JOBS.iter().find(|job| job.name == name || job.flag == name)
}

/// How often a schedule expression runs: `rate(N unit)`; `None` for `cron(...)`, which
/// the health check then judges by a day.
pub fn schedule_interval(expression: &str) -> Option<Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(' ')?;
    let count: u64 = count.parse().ok()?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3_600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(count * seconds))
}

/// A tick missed its runs once its last heartbeat is older than two intervals and a minute
/// (one late run is not an outage; two are).
pub fn missed_after(interval: Option<Duration>) -> Duration {
    match interval {
        Some(every) => every * 2 + Duration::from_secs(60),
        None => Duration::from_secs(86_400),
    }
}

/// The stack's resources, named as `template.yaml` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub stack: String,
}

impl Deployment {
    pub fn new(stack: impl Into<String>) -> Self {
        Self {
            stack: stack.into(),
        }
    }
    pub fn flags_table(&self) -> String {
        format!("{}-flags", self.stack)
    }
    pub fn operations_table(&self) -> String {
        format!("{}-operations", self.stack)
    }
    pub fn table(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.stack)
    }
    pub fn queue(&self, job: &JobSpec) -> String {
        format!("{}-{}", self.stack, job.name)
    }
    pub fn dead_letter_queue(&self, job: &JobSpec) -> String {
        format!("{}-{}-dlq", self.stack, job.name)
    }
}

/// One flag as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagView {
    pub name: String,
    /// `None`: no item (the functions then use their fallback: off).
    pub enabled: Option<bool>,
    pub rollout_percent: Option<u8>,
    /// An item that does not parse: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

impl FlagView {
    pub fn state(&self) -> Option<FlagState> {
        Some(FlagState {
            enabled: self.enabled?,
            rollout_percent: self.rollout_percent.unwrap_or(100),
        })
    }
}

/// A job's queue and dead-letter queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    pub queue: String,
    /// Waiting to be received.
    pub visible: u64,
    /// Received, not yet deleted (being worked on, or waiting out a backoff).
    pub in_flight: u64,
    pub delayed: u64,
    pub dead_letters: u64,
}

/// One path's figures over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathView {
    #[serde(flatten)]
    pub counts: Counts,
    pub failed: u64,
    /// Units processed per minute over the window.
    pub throughput_per_minute: f64,
    /// Failed ÷ (succeeded + failed): of the attempts that ended in the window, the share
    /// that failed (a retry that later succeeds counts once each way); `None` when none
    /// ended. Never above 1, whatever failed before reaching a handler.
    pub error_rate: Option<f64>,
    /// From due to done: each the upper bound of its histogram bucket.
    pub latency_ms: Percentiles,
    pub handle_ms: Percentiles,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub count: u64,
    pub mean: Option<u64>,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
}

impl Percentiles {
    pub fn of(histogram: &Histogram) -> Self {
        let at = |p: f64| histogram.percentile(p).map(|p| p.ms());
        Self {
            count: histogram.count(),
            mean: histogram.mean_ms(),
            p50: at(50.0),
            p95: at(95.0),
            p99: at(99.0),
        }
    }
}

impl PathView {
    pub fn of(counts: Counts, latency: &Histogram, handle: &Histogram, minutes: u32) -> Self {
        let failed = counts.failed();
        Self {
            counts,
            failed,
            throughput_per_minute: counts.processed as f64 / f64::from(minutes.max(1)),
            error_rate: (counts.succeeded + failed > 0)
                .then(|| failed as f64 / (counts.succeeded + failed) as f64),
            latency_ms: Percentiles::of(latency),
            handle_ms: Percentiles::of(handle),
        }
    }
}

/// One job, symphony beside legacy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobMetrics {
    pub job: String,
    pub flag: String,
    pub symphony: PathView,
    pub legacy: PathView,
    pub queue: Option<QueueView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsView {
    pub minutes: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub jobs: Vec<JobMetrics>,
}

/// One health check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub healthy: bool,
    /// What was found, or why it could not be read.
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `healthy` when every check is.
    pub status: &'static str,
    pub checked_at: DateTime<Utc>,
    pub checks: Vec<Check>,
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        self.checks.iter().all(|check| check.healthy)
    }
}

/// Reads a deployment for operators.
#[derive(Debug, Clone)]
pub struct Operations {
    pub deployment: Deployment,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    operations: OperationsTable,
    /// Each tick function's schedule expression.
    schedules: BTreeMap<&'static str, String>,
}

impl Operations {
    /// `schedule_of` gives a job's schedule expression by its variable (`EMAIL_SCHEDULE`);
    /// missing, the template's default.
    pub fn new(
        deployment: Deployment,
        sdk: &SdkConfig,
        schedule_of: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        Self {
            operations: OperationsTable::new(dynamo.clone(), deployment.operations_table()),
            schedules: JOBS
                .iter()
                .map(|job| {
                    let expression = schedule_of(job.schedule_variable)
                        .unwrap_or_else(|| job.default_schedule.to_owned());
                    (job.tick_function, expression)
                })
                .collect(),
            dynamo,
            sqs: aws_sdk_sqs::Client::new(sdk),
            deployment,
        }
    }

    pub fn table(&self) -> &OperationsTable {
        &self.operations
    }

    pub fn dynamo(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamo
    }

    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }

    /// The global switch and every job's flag, read consistently.
    pub async fn flags(&self) -> Result<Vec<FlagView>, AwsError> {
        let mut views = Vec::new();
        for name in std::iter::once(GLOBAL_FLAG).chain(JOBS.iter().map(|job| job.flag)) {
            let item = self
                .dynamo
                .get_item()
                .table_name(self.deployment.flags_table())
                .key("name", AttributeValue::S(name.to_owned()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("GetItem", e))?;
            let view = match item.item {
                None => FlagView {
                    name: name.to_owned(),
                    enabled: None,
                    rollout_percent: None,
                    invalid: None,
                },
                Some(item) => match parse_flag(&item) {
                    Ok(record) => FlagView {
                        name: name.to_owned(),
                        enabled: Some(record.enabled),
                        rollout_percent: Some(record.rollout_percent),
                        invalid: None,
                    },
                    Err(reason) => FlagView {
                        name: name.to_owned(),
                        enabled: None,
                        rollout_percent: None,
                        invalid: Some(reason),
                    },
                },
            };
            views.push(view);
        }
        Ok(views)
    }

    /// A queue's URL from its name.
    pub async fn queue_url(&self, name: &str) -> Result<String, AwsError> {
        let output = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetQueueUrl", e))?;
        Ok(output.queue_url().unwrap_or_default().to_owned())
    }

    /// A job's queue depths (approximate, as SQS counts them).
    pub async fn queue(&self, job: &JobSpec) -> Result<QueueView, AwsError> {
        let queue = self.deployment.queue(job);
        let attributes = self.attributes(&queue).await?;
        let dead = self
            .attributes(&self.deployment.dead_letter_queue(job))
            .await?;
        let count = |map: &BTreeMap<String, u64>, name: &QueueAttributeName| {
            map.get(name.as_str()).copied().unwrap_or(0)
        };
        Ok(QueueView {
            queue,
            visible: count(
                &attributes,
                &QueueAttributeName::ApproximateNumberOfMessages,
            ),
            in_flight: count(
                &attributes,
                &QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ),
            delayed: count(
                &attributes,
                &QueueAttributeName::ApproximateNumberOfMessagesDelayed,
            ),
            dead_letters: count(&dead, &QueueAttributeName::ApproximateNumberOfMessages)
                + count(
                    &dead,
                    &QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ),
        })
    }

    async fn attributes(&self, queue: &str) -> Result<BTreeMap<String, u64>, AwsError> {
        let url = self.queue_url(queue).await?;
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetQueueAttributes", e))?;
        Ok(output
            .attributes()
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.parse().ok()?)))
            .collect())
    }

    /// How many of a job's units are held as unknown outcomes; `None` for a job without
    /// a ledger.
    pub async fn held_count(&self, job: &JobSpec) -> Result<Option<u64>, AwsError> {
        let Some(ledger) = job.ledger else {
            return Ok(None);
        };
        let mut total = 0;
        let mut start = None;
        loop {
            let page = self
                .dynamo
                .query()
                .table_name(self.deployment.table(ledger.table_suffix))
                .index_name(ledger.status_index)
                .key_condition_expression("#status = :unknown")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":unknown", AttributeValue::S("unknown".into()))
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Query", e))?;
            total += u64::try_from(page.count()).unwrap_or(0);
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(Some(total)),
            }
        }
    }

    /// Every check, each on its own: one that cannot be read is unhealthy, and says why.
    pub async fn health(&self, now: DateTime<Utc>) -> Health {
        let mut checks = Vec::new();
        checks.push(match self.flags().await {
            Ok(flags) => {
                let invalid: Vec<&FlagView> =
                    flags.iter().filter(|f| f.invalid.is_some()).collect();
                Check {
                    name: "flags".into(),
                    healthy: invalid.is_empty(),
                    detail: serde_json::json!({ "table": self.deployment.flags_table(), "flags": flags }),
                }
            }
            Err(error) => unreadable("flags", &error),
        });
        for job in &JOBS {
            let name = format!("queue:{}", job.name);
            checks.push(match self.queue(job).await {
                Ok(queue) => Check {
                    name,
                    healthy: queue.dead_letters == 0,
                    detail: serde_json::json!({
                        "queue": queue.queue,
                        "visible": queue.visible,
                        "inFlight": queue.in_flight,
                        "delayed": queue.delayed,
                        "deadLetters": queue.dead_letters,
                        // SQS gives the age only as a CloudWatch metric: the dashboard
                        // and the queue-age alarm show it.
                        "oldestMessageAge": "see the CloudWatch metric ApproximateAgeOfOldestMessage",
                    }),
                },
                Err(error) => unreadable(&name, &error),
            });
            if job.ledger.is_some() {
                let name = format!("held:{}", job.name);
                checks.push(match self.held_count(job).await {
                    Ok(count) => Check {
                        name,
                        healthy: count == Some(0),
                        detail: serde_json::json!({ "unknownOutcomes": count,
                            "resolve": format!("symphony unknown list {}", job.name) }),
                    },
                    Err(error) => unreadable(&name, &error),
                });
            }
        }
        match self.operations.heartbeats().await {
            Ok(beats) => {
                for job in &JOBS {
                    checks.push(self.schedule_check(job, &beats, now));
                }
            }
            Err(error) => checks.push(unreadable("schedules", &error)),
        }
        let status = if checks.iter().all(|c| c.healthy) {
            "healthy"
        } else {
            "unhealthy"
        };
        Health {
            status,
            checked_at: now,
            checks,
        }
    }

    fn schedule_check(
        &self,
        job: &JobSpec,
        beats: &[symphony_core::Heartbeat],
        now: DateTime<Utc>,
    ) -> Check {
        let name = format!("schedule:{}", job.tick_function);
        let expression = self
            .schedules
            .get(job.tick_function)
            .cloned()
            .unwrap_or_default();
        let limit = missed_after(schedule_interval(&expression));
        let Some(beat) = beats.iter().find(|b| b.function == job.tick_function) else {
            return Check {
                name,
                healthy: false,
                detail: serde_json::json!({ "schedule": expression, "lastTick": null,
                    "problem": "no tick has ever been recorded" }),
            };
        };
        let age = (now - beat.at).num_seconds().max(0);
        let missed = u64::try_from(age).unwrap_or(0) > limit.as_secs();
        let mut detail = serde_json::json!({
            "schedule": expression,
            "lastTick": beat.at,
            "ageSeconds": age,
            "missedAfterSeconds": limit.as_secs(),
            "durationMs": beat.duration_ms,
            "fetchedWork": beat.ok,
            "did": beat.summary,
        });
        if missed {
            detail["problem"] = "the schedule missed its runs".into();
        } else if !beat.ok {
            detail["problem"] = "the last tick could not fetch its due work".into();
        }
        Check {
            name,
            healthy: !missed && beat.ok,
            detail,
        }
    }

    /// Each job's figures over the last `minutes` minutes, symphony beside legacy.
    pub async fn metrics(&self, minutes: u32, now: DateTime<Utc>) -> Result<MetricsView, AwsError> {
        let from = now - chrono::Duration::minutes(i64::from(minutes.saturating_sub(1)));
        let mut jobs = Vec::new();
        for job in &JOBS {
            let mut paths = Vec::new();
            for path in [Route::Symphony, Route::Legacy] {
                let mut counts = Counts::default();
                let mut latency = Histogram::default();
                let mut handle = Histogram::default();
                for minute in self.operations.minutes(job.name, path, from, now).await? {
                    counts.add(&minute.counts);
                    latency.merge(&minute.latency);
                    handle.merge(&minute.handle);
                }
                paths.push(PathView::of(counts, &latency, &handle, minutes));
            }
            let legacy = paths.pop().unwrap_or_default();
            let symphony = paths.pop().unwrap_or_default();
            jobs.push(JobMetrics {
                job: job.name.to_owned(),
                flag: job.flag.to_owned(),
                symphony,
                legacy,
                queue: self.queue(job).await.ok(),
            });
        }
        Ok(MetricsView {
            minutes,
            from,
            to: now,
            jobs,
        })
    }
}

fn unreadable(name: &str, error: &AwsError) -> Check {
    Check {
        name: name.to_owned(),
        healthy: false,
        detail: serde_json::json!({ "error": symphony_core::error::chain(error) }),
    }
}

/// `minutes` as the metrics endpoint takes it: missing is 60; otherwise a whole number
/// from 1 to 1440, or an error that says so.
pub fn parse_minutes(value: Option<&str>) -> Result<u32, String> {
    let Some(text) = value else {
        return Ok(60);
    };
    match text.parse::<u32>() {
        Ok(minutes) if (1..=1_440).contains(&minutes) => Ok(minutes),
        Ok(_) => Err(format!("minutes must be from 1 to 1440, got {text}")),
        Err(_) => Err(format!(
            "minutes must be a whole number from 1 to 1440, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_expressions_give_their_interval_and_cron_none() {
        assert_eq!(
            schedule_interval("rate(1 minute)"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            schedule_interval("rate(5 minutes)"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            schedule_interval("rate(2 hours)"),
            Some(Duration::from_secs(7_200))
        );
        assert_eq!(schedule_interval("cron(0 12 * * ? *)"), None);
        assert_eq!(missed_after(Some(Duration::from_secs(60))).as_secs(), 180);
    }

    #[test]
    fn minutes_default_to_sixty_and_refuse_what_is_not_one_to_1440() {
        assert_eq!(parse_minutes(None), Ok(60));
        assert_eq!(parse_minutes(Some("1440")), Ok(1_440));
        for bad in ["0", "1441", "-5", "ten", "2.5", ""] {
            let error = parse_minutes(Some(bad)).unwrap_err();
            assert!(error.contains("1 to 1440"), "{bad}: {error}");
        }
    }

    #[test]
    fn jobs_are_found_by_name_or_flag() {
        assert_eq!(
            job_named("sms").map(|j| j.tick_function),
            Some("process-sms-drip")
        );
        assert_eq!(
            job_named("SYMPHONY_EMAIL_QUEUE_ENABLED").map(|j| j.name),
            Some("email")
        );
        assert!(job_named("fax").is_none());
    }
}
