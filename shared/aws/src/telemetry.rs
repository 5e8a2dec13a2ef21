//! Logging set-up for a Lambda: JSON lines CloudWatch can query, level from `RUST_LOG`
//! (default `info`), no ANSI colours, no timestamps (CloudWatch adds its own).

use std::io::Write as _;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests, local runs) keeps the first subscriber.
    let _ = json_subscriber(filter, std::io::stdout).try_init();
}

/// The functions' log format, writing to `writer` (stdout in Lambda; a buffer in the
/// tests that check what the functions log, so they check the real lines).
pub fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(writer)
        .finish()
}

/// Writes each sample as a CloudWatch Embedded Metric Format line on stdout, where Lambda
/// ships it to CloudWatch Logs and CloudWatch turns it into metrics. No API call, no
/// failure: a line that cannot be written is lost with the log stream.
pub struct EmfSink {
    namespace: String,
    writer: std::sync::Mutex<Box<dyn std::io::Write + Send>>,
}

impl std::fmt::Debug for EmfSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmfSink")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The namespace the dashboard and alarms read, unless `METRICS_NAMESPACE` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "Symphony";

impl EmfSink {
    pub fn stdout(namespace: impl Into<String>) -> Self {
        Self::to_writer(namespace, Box::new(std::io::stdout()))
    }

    pub fn to_writer(namespace: impl Into<String>, writer: Box<dyn std::io::Write + Send>) -> Self {
        Self {
            namespace: namespace.into(),
            writer: std::sync::Mutex::new(writer),
        }
    }
}

#[async_trait::async_trait]
impl symphony_core::MetricsSink for EmfSink {
    async fn record(
        &self,
        samples: &[symphony_core::Sample],
    ) -> Result<(), symphony_core::HandlerError> {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for sample in samples {
            let line = symphony_core::metrics::emf_line(&self.namespace, sample);
            writeln!(writer, "{line}").map_err(|e| {
                symphony_core::HandlerError::new(
                    symphony_core::FailureKind::Infrastructure,
                    "writing an EMF line",
                    Some(Box::new(e)),
                )
            })?;
        }
        Ok(())
    }

    /// Heartbeats go to the operations table only; the tick's own "tick done" line and
    /// the `Dispatched`/`Processed` metrics show a schedule running in CloudWatch.
    async fn heartbeat(
        &self,
        _beat: &symphony_core::Heartbeat,
    ) -> Result<(), symphony_core::HandlerError> {
        Ok(())
    }
}
