//! A minimal Lambda Runtime API on loopback, serving one event to one process: what the
//! cold-start bench times and what `dev-stack invoke` runs a function under. It is the
//! part of Lambda's interface a `lambda_runtime` binary uses: `GET .../invocation/next`
//! gets the event, `POST .../response` or `.../error` answers it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::peak_rss_kib;

/// The variables Lambda sets for every function, with a region and credentials for a
/// local AWS at `endpoint` (moto accepts any).
pub fn lambda_env(endpoint: &str, function_name: &str) -> HashMap<String, String> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", function_name),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// What the Runtime API saw of the process.
#[derive(Debug)]
pub enum Seen {
    /// When, and the process's peak RSS (KiB) before it is given any event.
    Next(Instant, u64),
    /// When, and the function's answer.
    Answered(Instant, String),
    /// The error the function or the runtime reported.
    Failed(String),
}

/// A function process running under its own Runtime API.
#[derive(Debug)]
pub struct Running {
    child: tokio::process::Child,
    seen: mpsc::UnboundedReceiver<Seen>,
    server: tokio::task::JoinHandle<()>,
    /// When the process was started.
    pub started: Instant,
}

/// Starts `program` with `env` under a Runtime API whose first `/next` gets `event`, to
/// be answered within `timeout` (the function's configured timeout: its deadline);
/// later ones wait until the process is stopped. The process's stdout and stderr go
/// where `logs` says.
pub async fn start(
    program: &[String],
    env: &HashMap<String, String>,
    (event, timeout): (&str, Duration),
    logs: impl Fn() -> std::process::Stdio,
) -> Result<Running, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (sender, seen) = mpsc::unbounded_channel();
    let pid = Arc::new(AtomicU32::new(0));
    let server = tokio::spawn(serve(
        listener,
        (event.to_owned(), timeout),
        sender,
        pid.clone(),
    ));
    let started = Instant::now();
    let (name, args) = program.split_first().ok_or("no program")?;
    let child = tokio::process::Command::new(name)
        .args(args)
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdout(logs())
        .stderr(logs())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
    Ok(Running {
        child,
        seen,
        server,
        started,
    })
}

impl Running {
    /// The next thing the Runtime API saw, or `None` after `wait` without one. A process
    /// that exits first (a configuration error at start, a crash) is reported `Failed`.
    pub async fn next_seen(&mut self, wait: Duration) -> Option<Seen> {
        tokio::select! {
            seen = tokio::time::timeout(wait, self.seen.recv()) => seen.ok().flatten(),
            status = self.child.wait() => Some(Seen::Failed(match status {
                Ok(status) => format!("the process exited ({status}) before answering"),
                Err(e) => format!("the process could not be watched: {e}"),
            })),
        }
    }

    /// Stops the process and the Runtime API.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}

/// Runs `program` on one event with the function's `timeout`: its answer, or the error
/// it reported (or that it gave none in time). The function's log lines go to stderr,
/// as its answer is ours.
pub async fn invoke(
    program: &[String],
    env: &HashMap<String, String>,
    event: &str,
    timeout: Duration,
) -> Result<String, String> {
    let mut running = start(program, env, (event, timeout), || std::io::stderr().into()).await?;
    // As Lambda does, the process is stopped at its deadline (counted from its start, a
    // little more generous than Lambda's, which counts from the event).
    let deadline = running.started + timeout;
    let outcome = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match running.next_seen(left).await {
            Some(Seen::Next(..)) => {}
            Some(Seen::Answered(_, body)) => break Ok(body),
            Some(Seen::Failed(error)) => break Err(error),
            None => break Err(format!("timed out after {} s", timeout.as_secs())),
        }
    };
    running.stop().await;
    outcome
}

/// Serves the Runtime API to one process: the first `/next` gets `event`, later ones are
/// left waiting (the process is stopped then).
async fn serve(
    listener: TcpListener,
    (event, timeout): (String, Duration),
    seen: mpsc::UnboundedSender<Seen>,
    pid: Arc<AtomicU32>,
) {
    let mut served_event = false;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                break;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                    return;
                }
                if header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
            let now = Instant::now();
            let path = request_line.split_whitespace().nth(1).unwrap_or_default();
            if path.ends_with("/invocation/next") {
                let rss = peak_rss_kib(pid.load(Ordering::SeqCst));
                let _ = seen.send(Seen::Next(now, rss));
                if served_event {
                    // One event per process: it waits here until it is stopped.
                    tokio::time::sleep(Duration::from_secs(3_600)).await;
                    return;
                }
                served_event = true;
                let deadline = chrono::Utc::now().timestamp_millis()
                    + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: local-1\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:local\r\nlambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\ncontent-length: {}\r\n\r\n",
                    event.len()
                );
                let _ = write.write_all(head.as_bytes()).await;
                let _ = write.write_all(event.as_bytes()).await;
            } else {
                let body = String::from_utf8_lossy(&body).into_owned();
                if path.ends_with("/response") {
                    let _ = seen.send(Seen::Answered(now, body));
                } else {
                    let _ = seen.send(Seen::Failed(format!("{path}: {body}")));
                }
                let _ = write
                    .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        }
    }
}
