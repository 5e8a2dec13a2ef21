//! The functions' log lines, captured for tests through their own set-up
//! (`symphony_aws::telemetry`): what a test reads is what CloudWatch would get.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing_subscriber::util::SubscriberInitExt;

/// A log buffer every line of the process goes to, from [`CapturedLogs::install`] on.
#[derive(Debug, Clone)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Installs the functions' JSON log format as the process's subscriber, at `filter`
    /// (`info`, `trace`...), writing here. Once per test binary.
    pub fn install(filter: &str) -> Self {
        let captured = Self(Arc::new(Mutex::new(Vec::new())));
        let writer = captured.clone();
        symphony_aws::telemetry::json_subscriber(
            tracing_subscriber::EnvFilter::new(filter),
            move || writer.clone(),
        )
        .init();
        captured
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("the log buffer").clone())
            .expect("log lines are UTF-8")
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the log buffer")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts the bytes of log lines written to it (what they would cost to ingest), keeping
/// none of them: the benchmarks' log figure.
#[derive(Debug, Clone, Default)]
pub struct LogBytes(Arc<AtomicU64>);

impl LogBytes {
    /// Installs the functions' JSON log format as the process's subscriber, at `filter`,
    /// counting here. Once per process.
    pub fn install(filter: &str) -> Self {
        let counted = Self::default();
        let writer = counted.clone();
        symphony_aws::telemetry::json_subscriber(
            tracing_subscriber::EnvFilter::new(filter),
            move || writer.clone(),
        )
        .init();
        counted
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Write for LogBytes {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
