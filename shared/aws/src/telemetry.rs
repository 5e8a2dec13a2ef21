//! Logging set-up for a Lambda: JSON lines CloudWatch can query, level from `RUST_LOG`
//! (default `info`), no ANSI colours, no timestamps (CloudWatch adds its own).

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
