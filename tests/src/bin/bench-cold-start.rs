//! Cold start: each function from process start to its first `GET /next` on a local
//! Lambda Runtime API, its peak RSS then, and its first invocation, beside a hello-world
//! `lambda_runtime` binary, the same with the SQS and DynamoDB clients built at init, and
//! a Node.js function that creates the same clients. All in one run.
//!
//! `scripts/bench-cold-start.sh [runs]` builds every binary in release first. The functions
//! run with the environment `template.yaml` gives them, against a moto server provisioned
//! from the template; the first invocation gets the sample event (its units are not seeded:
//! it measures a first call's set-up and round trips, not a send).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use symphony_tests::world::World;
use symphony_tests::{peak_rss_kib, project_root};

/// What the Runtime API saw of one process.
#[derive(Debug)]
enum Seen {
    /// When, and the process's peak RSS (KiB) before it is given any event.
    Next(Instant, u64),
    Answered(Instant),
    Failed(String),
}

/// Serves the Runtime API to one process: the first `/next` gets `event`, later ones are
/// left waiting (the process is killed then).
async fn serve(
    listener: TcpListener,
    event: String,
    seen: mpsc::UnboundedSender<Seen>,
    pid: std::sync::Arc<std::sync::atomic::AtomicU32>,
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
                let rss = peak_rss_kib(pid.load(std::sync::atomic::Ordering::SeqCst));
                let _ = seen.send(Seen::Next(now, rss));
                if served_event {
                    // The bench has what it needs: the process waits here until killed.
                    tokio::time::sleep(Duration::from_secs(3_600)).await;
                    return;
                }
                served_event = true;
                let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: bench-1\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\nlambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\ncontent-length: {}\r\n\r\n",
                    event.len()
                );
                let _ = write.write_all(head.as_bytes()).await;
                let _ = write.write_all(event.as_bytes()).await;
            } else {
                if path.ends_with("/response") {
                    let _ = seen.send(Seen::Answered(now));
                } else {
                    let _ = seen.send(Seen::Failed(format!(
                        "{path}: {}",
                        String::from_utf8_lossy(&body)
                    )));
                }
                let _ = write
                    .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        }
    }
}

/// One start: (ms to the first GET /next, peak RSS KiB then, ms of the first invocation).
async fn start_once(
    program: &[String],
    env: &HashMap<String, String>,
    event: &str,
) -> Result<(f64, u64, f64), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (sender, mut seen) = mpsc::unbounded_channel();
    let pid = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let server = tokio::spawn(serve(listener, event.to_owned(), sender, pid.clone()));
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&program[0])
        .args(&program[1..])
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", program[0]))?;
    pid.store(child.id().unwrap_or(0), std::sync::atomic::Ordering::SeqCst);
    let wait = Duration::from_secs(30);
    let (mut first_next, mut rss, mut answered) = (None, 0, None);
    while answered.is_none() {
        match tokio::time::timeout(wait, seen.recv()).await {
            Ok(Some(Seen::Next(at, kib))) if first_next.is_none() => {
                rss = kib;
                first_next = Some(at);
            }
            Ok(Some(Seen::Next(..))) => {}
            Ok(Some(Seen::Answered(at))) => answered = Some(at),
            Ok(Some(Seen::Failed(why))) => {
                let _ = child.kill().await;
                return Err(why);
            }
            Ok(None) | Err(_) => {
                let _ = child.kill().await;
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        err.read_to_string(&mut stderr),
                    )
                    .await;
                }
                return Err(format!("no answer: {stderr}"));
            }
        }
    }
    let _ = child.kill().await;
    server.abort();
    let first_next = first_next.ok_or("no GET /next")?;
    let answered = answered.ok_or("no answer")?;
    Ok((
        (first_next - started).as_secs_f64() * 1_000.0,
        rss,
        (answered - first_next).as_secs_f64() * 1_000.0,
    ))
}

/// What is started: its name, its command line, its environment and its first event.
type Subject = (String, Vec<String>, HashMap<String, String>, String);

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(9);
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| project_root().join("target"))
        .join("release");
    let world = World::start().await;
    let path = std::env::var("PATH").unwrap_or_default();
    let events = project_root().join("events");
    let read = |name: &str| std::fs::read_to_string(events.join(name)).unwrap_or_default();
    let aws = |mut env: HashMap<String, String>| {
        for (name, value) in [
            ("AWS_ENDPOINT_URL", world.moto.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "bench"),
            ("PATH", path.as_str()),
        ] {
            env.insert(name.to_owned(), value.to_owned());
        }
        env
    };
    let bin = |name: &str| vec![target.join(name).to_string_lossy().into_owned()];
    let no_env = HashMap::new;
    let mut subjects: Vec<Subject> = vec![
        (
            "hello-world".into(),
            bin("hello-lambda"),
            aws(no_env()),
            "{}".into(),
        ),
        (
            "hello-world + SQS, DynamoDB clients".into(),
            bin("hello-lambda-clients"),
            aws(no_env()),
            "{}".into(),
        ),
        (
            "Node.js 20 + SQS, DynamoDB clients".into(),
            vec![
                "node".into(),
                project_root()
                    .join("bench/peers/node-cold-start.mjs")
                    .to_string_lossy()
                    .into_owned(),
            ],
            aws(no_env()),
            "{}".into(),
        ),
    ];
    for (function, logical_id, event) in [
        (
            "process-email-queue",
            "ProcessEmailQueueFunction",
            "example-eventbridge-email-queue.json",
        ),
        (
            "handle-email",
            "HandleEmailFunction",
            "example-sqs-email.json",
        ),
        (
            "process-campaigns",
            "ProcessCampaignsFunction",
            "example-eventbridge-campaigns.json",
        ),
        (
            "handle-campaign",
            "HandleCampaignFunction",
            "example-sqs-campaign.json",
        ),
        (
            "process-sms-drip",
            "ProcessSmsDripFunction",
            "example-eventbridge-sms-drip.json",
        ),
        ("handle-sms", "HandleSmsFunction", "example-sqs-sms.json"),
        (
            "symphony-api",
            "SymphonyApiFunction",
            "example-function-url-health.json",
        ),
    ] {
        subjects.push((
            function.into(),
            bin(function),
            aws(world.function_env(logical_id, &[])),
            read(event),
        ));
    }
    let mut rows = Vec::new();
    for (name, program, env, event) in &subjects {
        let (mut init, mut rss, mut first) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            match start_once(program, env, event).await {
                Ok((ms, kib, invocation)) => {
                    init.push(ms);
                    rss.push(kib as f64 / 1_024.0);
                    first.push(invocation);
                }
                Err(why) => panic!("{name}: {why}"),
            }
        }
        rows.push((
            name.clone(),
            median(&mut init),
            median(&mut rss),
            median(&mut first),
        ));
    }
    let with_clients = rows[1].1;
    let node = rows[2].1;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "median of {runs} starts each, release builds\n");
    let _ = writeln!(
        out,
        "| process | start to first GET /next | × hello-world + clients | Node ÷ it | peak RSS then | first invocation |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for (name, init, rss, first) in &rows {
        let _ = writeln!(
            out,
            "| {name} | {init:.1} ms | {:.2}× | {:.1}× | {rss:.1} MiB | {first:.1} ms |",
            init / with_clients,
            node / init
        );
    }
}
