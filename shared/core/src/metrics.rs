//! What a tick or a batch did, per job and path, as figures an operator compares:
//! counts, latency from the unit's due time to done, and handle time.
//!
//! One [`Sample`] per path per tick or batch, never one per message: a sink writes each
//! sample once (an Embedded Metric Format line, one DynamoDB update per minute bucket).
//! Latency is kept as a fixed-bucket [`Histogram`] so that minutes written by many
//! invocations merge into percentiles.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{FailureKind, HandlerError, Route};

/// Upper bounds of the latency buckets, in milliseconds; a last bucket holds the rest.
/// Fixed for ever: stored minutes from older versions must merge with new ones.
pub const BUCKET_BOUNDS_MS: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000,
    1_800_000, 3_600_000, 21_600_000,
];
/// Buckets: one per bound, and the one beyond the last.
pub const BUCKETS: usize = BUCKET_BOUNDS_MS.len() + 1;
/// Embedded Metric Format takes at most this many values per metric in one line.
pub const MAX_RAW_VALUES: usize = 100;

/// Counts of what happened, one field per figure the dashboard and the API show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Put on the queue by a tick (the symphony path's hand-over).
    pub dispatched: u64,
    /// Units whose processing ended this time, whatever the ending.
    pub processed: u64,
    pub succeeded: u64,
    /// Failed, to be tried again by itself (an SMTP 4xx, a deferral).
    pub failed_transient: u64,
    /// Failed for its own reason: never retried.
    pub failed_intrinsic: u64,
    /// Failed for no fault of its own (a permission, a missing queue): tried again.
    pub failed_infrastructure: u64,
    /// Handed over with no answer: held for a person.
    pub failed_unknown: u64,
    /// Failures given back for another attempt (a backoff, a release).
    pub retried: u64,
    pub dead_lettered: u64,
}

impl Counts {
    pub fn failed(&self) -> u64 {
        self.failed_transient
            + self.failed_intrinsic
            + self.failed_infrastructure
            + self.failed_unknown
    }

    /// Counts one failure of `kind`.
    pub fn fail(&mut self, kind: FailureKind) {
        match kind {
            FailureKind::Transient => self.failed_transient += 1,
            FailureKind::Intrinsic => self.failed_intrinsic += 1,
            FailureKind::Infrastructure => self.failed_infrastructure += 1,
            FailureKind::UnknownOutcome => self.failed_unknown += 1,
        }
    }

    pub fn add(&mut self, other: &Self) {
        self.dispatched += other.dispatched;
        self.processed += other.processed;
        self.succeeded += other.succeeded;
        self.failed_transient += other.failed_transient;
        self.failed_intrinsic += other.failed_intrinsic;
        self.failed_infrastructure += other.failed_infrastructure;
        self.failed_unknown += other.failed_unknown;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
    }

    /// Each figure with its stored (and EMF) name, in one order everywhere.
    pub fn named(&self) -> [(&'static str, u64); 9] {
        [
            ("dispatched", self.dispatched),
            ("processed", self.processed),
            ("succeeded", self.succeeded),
            ("failedTransient", self.failed_transient),
            ("failedIntrinsic", self.failed_intrinsic),
            ("failedInfrastructure", self.failed_infrastructure),
            ("failedUnknown", self.failed_unknown),
            ("retried", self.retried),
            ("deadLettered", self.dead_lettered),
        ]
    }

    /// Sets a figure from its stored name; `false` for a name this version does not know.
    pub fn set_named(&mut self, name: &str, value: u64) -> bool {
        let field = match name {
            "dispatched" => &mut self.dispatched,
            "processed" => &mut self.processed,
            "succeeded" => &mut self.succeeded,
            "failedTransient" => &mut self.failed_transient,
            "failedIntrinsic" => &mut self.failed_intrinsic,
            "failedInfrastructure" => &mut self.failed_infrastructure,
            "failedUnknown" => &mut self.failed_unknown,
            "retried" => &mut self.retried,
            "deadLettered" => &mut self.dead_lettered,
            _ => return false,
        };
        *field = value;
        true
    }
}

/// Durations counted into fixed buckets ([`BUCKET_BOUNDS_MS`]), plus their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    pub counts: [u64; BUCKETS],
    pub sum_ms: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            sum_ms: 0,
        }
    }
}

impl Histogram {
    /// The bucket a duration falls in.
    pub fn bucket_of(ms: u64) -> usize {
        BUCKET_BOUNDS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(BUCKET_BOUNDS_MS.len())
    }

    pub fn record(&mut self, ms: u64) {
        self.counts[Self::bucket_of(ms)] += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The mean, when anything was recorded.
    pub fn mean_ms(&self) -> Option<u64> {
        let count = self.count();
        (count > 0).then(|| self.sum_ms / count)
    }

    /// The `p`th percentile (0 < p ≤ 100) as the upper bound of the bucket it falls in:
    /// "at most this long". The last bucket has no bound: it answers `None` with
    /// `beyond_last = true` in [`Percentile`].
    pub fn percentile(&self, p: f64) -> Option<Percentile> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // The rank of the p-th percentile, 1-based: ceil(p/100 × count), at least 1.
        let rank = ((p / 100.0) * count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, in_bucket) in self.counts.iter().enumerate() {
            seen += in_bucket;
            if seen >= rank {
                return Some(match BUCKET_BOUNDS_MS.get(bucket) {
                    Some(bound) => Percentile::AtMost(*bound),
                    None => Percentile::Beyond(BUCKET_BOUNDS_MS[BUCKET_BOUNDS_MS.len() - 1]),
                });
            }
        }
        None
    }
}

/// A percentile read from a histogram: the bound of its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Percentile {
    /// At most this many milliseconds.
    AtMost(u64),
    /// Longer than the last bound (six hours).
    Beyond(u64),
}

impl Percentile {
    /// The figure to show or graph: the bucket's bound.
    pub fn ms(self) -> u64 {
        match self {
            Self::AtMost(ms) | Self::Beyond(ms) => ms,
        }
    }
}

/// The figures of one path of one job over one tick or batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathFigures {
    pub counts: Counts,
    /// From the unit's due time (or, lacking it, its dispatch) to done.
    pub latency: Histogram,
    /// How long handling took, per unit.
    pub handle: Histogram,
    /// The first [`MAX_RAW_VALUES`] latencies as measured, for Embedded Metric Format
    /// (CloudWatch computes its own percentiles from them).
    pub raw_latency_ms: Vec<u64>,
    pub raw_handle_ms: Vec<u64>,
}

impl PathFigures {
    pub fn is_empty(&self) -> bool {
        self.counts == Counts::default() && self.latency.is_empty() && self.handle.is_empty()
    }

    /// A unit done: its latency (due to done) and its handle time.
    pub fn time(&mut self, latency_ms: Option<u64>, handle_ms: Option<u64>) {
        if let Some(ms) = latency_ms {
            self.latency.record(ms);
            if self.raw_latency_ms.len() < MAX_RAW_VALUES {
                self.raw_latency_ms.push(ms);
            }
        }
        if let Some(ms) = handle_ms {
            self.handle.record(ms);
            if self.raw_handle_ms.len() < MAX_RAW_VALUES {
                self.raw_handle_ms.push(ms);
            }
        }
    }
}

/// One path's figures for one job at one moment: what a sink writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The job's name, as in its queues: `email`, `campaign`, `sms`.
    pub job: String,
    pub path: Route,
    pub at: DateTime<Utc>,
    pub figures: PathFigures,
}

/// Per-path figures being gathered for one job.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    paths: BTreeMap<&'static str, (Route, PathFigures)>,
}

impl Recorder {
    pub fn path(&mut self, route: Route) -> &mut PathFigures {
        let key = match route {
            Route::Symphony => "symphony",
            Route::Legacy => "legacy",
        };
        &mut self
            .paths
            .entry(key)
            .or_insert((route, PathFigures::default()))
            .1
    }

    /// The samples to write: one per path that did anything.
    pub fn samples(self, job: &str, at: DateTime<Utc>) -> Vec<Sample> {
        self.paths
            .into_values()
            .filter(|(_, figures)| !figures.is_empty())
            .map(|(path, figures)| Sample {
                job: job.to_owned(),
                path,
                at,
                figures,
            })
            .collect()
    }
}

/// When a schedule last ran, how long it took and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    /// The scheduled function, e.g. `process-email-queue`.
    pub function: String,
    pub job: String,
    pub at: DateTime<Utc>,
    pub duration_ms: u64,
    /// `true` when the tick could fetch its work (a failed fetch still beats).
    pub ok: bool,
    /// The tick's counts (`due`, `dispatched`, `legacy`, `failed`, `held`...).
    pub summary: BTreeMap<String, u64>,
}

/// Where figures go. A failure to write them is reported, never a unit's failure.
#[async_trait]
pub trait MetricsSink: Send + Sync + std::fmt::Debug {
    /// Writes the samples of one tick or batch: one write per sample at most.
    async fn record(&self, samples: &[Sample]) -> Result<(), HandlerError>;
    /// Writes a schedule's heartbeat.
    async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), HandlerError>;
}

/// Writes to every sink in turn; reports the first failure after trying them all.
#[derive(Debug, Default)]
pub struct Fanout(pub Vec<std::sync::Arc<dyn MetricsSink>>);

#[async_trait]
impl MetricsSink for Fanout {
    async fn record(&self, samples: &[Sample]) -> Result<(), HandlerError> {
        let mut first = Ok(());
        for sink in &self.0 {
            if let Err(error) = sink.record(samples).await
                && first.is_ok()
            {
                first = Err(error);
            }
        }
        first
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), HandlerError> {
        let mut first = Ok(());
        for sink in &self.0 {
            if let Err(error) = sink.heartbeat(beat).await
                && first.is_ok()
            {
                first = Err(error);
            }
        }
        first
    }
}

/// Keeps what it is given: for unit tests.
#[derive(Debug, Default)]
pub struct MemoryMetrics {
    samples: std::sync::Mutex<Vec<Sample>>,
    beats: std::sync::Mutex<Vec<Heartbeat>>,
}

impl MemoryMetrics {
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn heartbeats(&self) -> Vec<Heartbeat> {
        self.beats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The counts of one path, over everything recorded.
    pub fn counts(&self, path: Route) -> Counts {
        let mut total = Counts::default();
        for sample in self.samples().iter().filter(|s| s.path == path) {
            total.add(&sample.figures.counts);
        }
        total
    }
}

#[async_trait]
impl MetricsSink for MemoryMetrics {
    async fn record(&self, samples: &[Sample]) -> Result<(), HandlerError> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(samples);
        Ok(())
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), HandlerError> {
        self.beats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(beat.clone());
        Ok(())
    }
}

/// CloudWatch Embedded Metric Format: one JSON line per sample, which CloudWatch Logs
/// turns into metrics (namespace `namespace`, dimensions `Job` and `Path`) with no API
/// call. Counts are `Count`; latency and handle time are `Milliseconds` value arrays.
pub fn emf_line(namespace: &str, sample: &Sample) -> String {
    let mut metrics = Vec::new();
    let mut line = serde_json::Map::new();
    for (name, value) in sample.figures.counts.named() {
        let name = emf_name(name);
        metrics.push(serde_json::json!({"Name": name, "Unit": "Count"}));
        line.insert(name, value.into());
    }
    for (name, values) in [
        ("Latency", &sample.figures.raw_latency_ms),
        ("HandleTime", &sample.figures.raw_handle_ms),
    ] {
        if !values.is_empty() {
            metrics.push(serde_json::json!({"Name": name, "Unit": "Milliseconds"}));
            line.insert(name.to_owned(), serde_json::json!(values));
        }
    }
    line.insert("Job".to_owned(), sample.job.clone().into());
    line.insert("Path".to_owned(), sample.path.to_string().into());
    line.insert(
        "_aws".to_owned(),
        serde_json::json!({
            "Timestamp": sample.at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Job", "Path"]],
                "Metrics": metrics,
            }],
        }),
    );
    serde_json::Value::Object(line).to_string()
}

/// `failedIntrinsic` → `FailedIntrinsic`: CloudWatch metric names read as titles.
pub fn emf_name(stored: &str) -> String {
    let mut chars = stored.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Milliseconds from `from` to `to`, none when `to` is earlier (a clock skew).
pub fn elapsed_ms(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<u64> {
    u64::try_from((to - from).num_milliseconds()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_bucket_whose_bound_they_do_not_pass() {
        assert_eq!(Histogram::bucket_of(0), 0);
        assert_eq!(Histogram::bucket_of(50), 0);
        assert_eq!(Histogram::bucket_of(51), 1);
        assert_eq!(Histogram::bucket_of(21_600_000), BUCKETS - 2);
        assert_eq!(Histogram::bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_merged_minutes_are_those_of_all_their_units() {
        let mut first = Histogram::default();
        let mut second = Histogram::default();
        for ms in [10, 20, 30, 40, 60, 70, 80, 90, 200] {
            first.record(ms);
        }
        second.record(4_000);
        let mut all = first;
        all.merge(&second);
        assert_eq!(all.count(), 10);
        assert_eq!(all.sum_ms, 4_600);
        assert_eq!(all.percentile(50.0), Some(Percentile::AtMost(100)));
        assert_eq!(all.percentile(90.0), Some(Percentile::AtMost(250)));
        assert_eq!(all.percentile(99.0), Some(Percentile::AtMost(5_000)));
        assert_eq!(all.mean_ms(), Some(460));
        assert_eq!(Histogram::default().percentile(50.0), None);
        let mut beyond = Histogram::default();
        beyond.record(30_000_000);
        assert_eq!(
            beyond.percentile(50.0),
            Some(Percentile::Beyond(21_600_000))
        );
    }

    #[test]
    fn every_count_has_a_stored_name_that_reads_back() {
        let mut counts = Counts::default();
        for (i, (name, _)) in Counts::default().named().iter().enumerate() {
            assert!(counts.set_named(name, i as u64 + 1), "{name}");
        }
        let values: Vec<u64> = counts.named().iter().map(|(_, v)| *v).collect();
        assert_eq!(values, (1..=9).collect::<Vec<u64>>());
        assert!(!counts.set_named("sentTwice", 1));
        counts.fail(FailureKind::UnknownOutcome);
        assert_eq!(counts.failed_unknown, 8);
    }

    #[test]
    fn an_emf_line_declares_every_metric_it_carries_under_job_and_path() {
        let mut figures = PathFigures::default();
        figures.counts.processed = 3;
        figures.counts.succeeded = 2;
        figures.counts.fail(FailureKind::Intrinsic);
        figures.time(Some(1_200), Some(40));
        let sample = Sample {
            job: "email_queue".into(),
            path: Route::Legacy,
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            figures,
        };
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("Symphony/test", &sample)).unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Symphony/test");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["Job", "Path"]])
        );
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(line["Job"], "email_queue");
        assert_eq!(line["Path"], "legacy");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(!line[name].is_null(), "{name} declared but not carried");
        }
        assert_eq!(line["Processed"], 3);
        assert_eq!(line["FailedIntrinsic"], 1);
        assert_eq!(line["Latency"], serde_json::json!([1_200]));
        assert_eq!(line["HandleTime"], serde_json::json!([40]));
    }

    #[test]
    fn raw_values_stop_at_the_emf_limit_while_the_histogram_counts_all() {
        let mut figures = PathFigures::default();
        for ms in 0..150 {
            figures.time(Some(ms), None);
        }
        assert_eq!(figures.raw_latency_ms.len(), MAX_RAW_VALUES);
        assert_eq!(figures.latency.count(), 150);
        assert!(figures.raw_handle_ms.is_empty());
    }
}
