//! Real services on loopback, started from the project's own venv.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::project_root;

/// Installs the pinned Python tools into `.venv` once per process (the script itself is
/// idempotent and locked, so parallel test binaries are safe). Returns the venv's `bin`.
pub fn python_bin() -> PathBuf {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let root = project_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/python-env.sh"))
            .status()
            .map_err(|e| format!("cannot run scripts/python-env.sh: {e}"))?;
        if status.success() {
            Ok(root.join(".venv/bin"))
        } else {
            Err(format!("scripts/python-env.sh failed: {status}"))
        }
    });
    match ready {
        Ok(bin) => bin.clone(),
        Err(reason) => panic!("{reason}"),
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free port on 127.0.0.1")
}

/// A port on 127.0.0.1 that refuses every connection for as long as this is held: the
/// socket is bound, so no other test can take the port, and never listens.
#[derive(Debug)]
pub struct RefusingPort {
    pub port: u16,
    _socket: tokio::net::TcpSocket,
}

impl RefusingPort {
    pub fn bind() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("cannot make a socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("cannot bind a port on 127.0.0.1");
        let port = socket
            .local_addr()
            .expect("a bound socket has an address")
            .port();
        Self {
            port,
            _socket: socket,
        }
    }
}

/// A child process stopped (by its PID) when dropped.
#[derive(Debug)]
struct ServiceProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// A scratch folder removed with the process.
    scratch: Option<PathBuf>,
}

impl ServiceProcess {
    fn spawn(name: &'static str, command: &mut Command, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("cannot create the service folder");
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("cannot create the service log");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("cannot share the log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name,
            child,
            log,
            scratch: None,
        }
    }

    fn wait_for_port(&mut self, port: u16, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not listen on port {port} within {limit:?}:\n{}",
            self.name,
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(scratch) = &self.scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

/// A plain HTTP/1.0 GET on loopback, for moto's own inspection API.
fn http_get(port: u16, path: &str) -> String {
    http_request(port, "GET", path)
}

/// A plain HTTP/1.0 request on loopback without a body: the answer's body (a 200 only).
fn http_request(port: u16, method: &str, path: &str) -> String {
    use std::io::Write;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("cannot reach moto");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .expect("cannot send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("cannot read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("symphony-{name}-{}", uuid::Uuid::new_v4()))
}

/// A moto server: SQS, DynamoDB, SNS (and every other AWS API moto has) on 127.0.0.1,
/// one request at a time (see `scripts/moto_server.py`).
#[derive(Debug)]
pub struct Moto {
    process: ServiceProcess,
    pub port: u16,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// The same, with SNS refusing (`Throttling`) the first `failures` SMS publishes to
    /// `share` of the phone numbers, chosen by a hash of the number.
    pub fn start_throttling_sms(share: f64, failures: u32) -> Self {
        Self::start_with(&["--sns-throttle", &format!("{share}:{failures}")])
    }

    /// The same, with SNS publishing every SMS to a number starting with `prefix` and then
    /// answering 500: the caller cannot know the text went out.
    pub fn start_unsure_sms(prefix: &str) -> Self {
        Self::start_with(&["--sns-unsure", prefix])
    }

    /// With any of `scripts/moto_server.py`'s fault options (`--sns-throttle`,
    /// `--sns-unsure`, `--sqs-refuse-sends`), as option-value pairs.
    pub fn start_with(options: &[&str]) -> Self {
        let bin = python_bin();
        let port = free_port();
        let mut process = ServiceProcess::spawn(
            "moto",
            Command::new(bin.join("python"))
                .arg(project_root().join("scripts/moto_server.py"))
                .args(["127.0.0.1", &port.to_string()])
                .args(options),
            &scratch_dir("moto"),
        );
        process.wait_for_port(port, Duration::from_secs(60));
        Self {
            process,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Every request the server has answered since the last reset, by service and
    /// operation (`DynamoDB.UpdateItem`: count), as `scripts/moto_server.py` counts them.
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        serde_json::from_str(&http_get(self.port, "/_symphony/requests"))
            .expect("moto's request counts are JSON")
    }

    /// Sets the request counts back to zero.
    pub fn reset_request_counts(&self) {
        http_request(self.port, "DELETE", "/_symphony/requests");
    }

    /// The text messages moto recorded as sent through SNS: (phone number, body), in order.
    pub fn recorded_sms(&self) -> Vec<(String, String)> {
        recorded_sms_at(self.port)
    }

    /// An SDK configuration that talks to this server with test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_at(&self.endpoint).await
    }
}

/// Every SMS the moto server on `port` published through SNS: (phone number, text).
pub fn recorded_sms_at(port: u16) -> Vec<(String, String)> {
    let body = http_get(port, "/moto-api/data.json");
    let data: serde_json::Value = serde_json::from_str(&body).expect("moto's data.json is JSON");
    data["sns"]["SMS"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|sms| {
            (
                sms["phone_number"].as_str().unwrap_or_default().to_owned(),
                sms["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// An SDK configuration that talks to a local AWS (a moto server) at `endpoint`, with
/// test credentials.
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "symphony-tests",
        ))
        .load()
        .await
}

/// One mail the SMTP server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: String,
}

impl ReceivedMail {
    /// The email id from the Message-ID header (`<emailId@symphony>`).
    pub fn email_id(&self) -> Option<String> {
        self.data.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            if !name.eq_ignore_ascii_case("message-id") {
                return None;
            }
            let value = value.trim().trim_start_matches('<');
            value.split_once("@symphony>").map(|(id, _)| id.to_owned())
        })
    }
}

/// Every mail an SMTP recorder (`scripts/smtp_recorder.py --out dir`) accepted into
/// `dir`, in order of arrival.
pub fn received_in(dir: &Path) -> Vec<ReceivedMail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("cannot read a recorded mail");
            serde_json::from_str(&text).expect("a recorded mail is not valid JSON")
        })
        .collect()
}

/// What a hostile SMTP server does (`scripts/smtp_recorder.py`); each regex matches
/// recipients, an empty one none.
#[derive(Debug, Clone, Default)]
pub struct Hostility<'a> {
    /// Rejected for good (550).
    pub reject: &'a str,
    /// Share of all other recipients deferred (451) at random.
    pub tempfail_share: f64,
    /// Stored, then acknowledged after the delay.
    pub late: (&'a str, Duration),
    /// Stored, then the connection closed unanswered.
    pub dropped: &'a str,
}

/// A real SMTP server on loopback that records every mail it accepts. Recipients that
/// match `reject` get a 550, those that match `tempfail` a 451.
#[derive(Debug)]
pub struct SmtpServer {
    process: ServiceProcess,
    pub port: u16,
    pub mail_dir: PathBuf,
}

impl SmtpServer {
    /// Records into a scratch folder removed when the server stops.
    pub fn start(reject: &str, tempfail: &str) -> Self {
        let dir = scratch_dir("smtp");
        let mut server = Self::start_in(&dir, reject, tempfail);
        server.process.scratch = Some(dir);
        server
    }

    /// Refuses senders matching `sender` at MAIL FROM with 530 (authentication required),
    /// as a relay that wants a login the mailbox does not make.
    /// A server that answers MAIL FROM with 553 (may not send as this sender) for senders
    /// matching `sender`.
    pub fn start_refusing_senders(sender: &str) -> Self {
        let dir = scratch_dir("smtp-senders");
        let mut server = Self::start_with(&dir, &["--refuse-sender", sender]);
        server.process.scratch = Some(dir);
        server
    }

    pub fn start_rejecting_senders(sender: &str) -> Self {
        let dir = scratch_dir("smtp-senders");
        let mut server = Self::start_with(&dir, &["--reject-sender", sender]);
        server.process.scratch = Some(dir);
        server
    }

    /// A server that requires STARTTLS, with a certificate from a throwaway CA whose PEM
    /// is at the returned path.
    pub fn start_requiring_starttls() -> (Self, PathBuf) {
        Self::start_requiring_starttls_and(&[])
    }

    /// A server speaking TLS from the first byte (as on port 465), with a certificate from
    /// a throwaway CA whose PEM is at the returned path.
    pub fn start_implicit_tls() -> (Self, PathBuf) {
        let dir = scratch_dir("smtp-implicit-tls");
        std::fs::create_dir_all(&dir).expect("cannot create the service folder");
        let mut server = Self::start_with(&dir, &["--tls", &dir.to_string_lossy()]);
        server.process.scratch = Some(dir.clone());
        (server, dir.join("ca.pem"))
    }

    /// A server that requires STARTTLS and the login `user:password`.
    pub fn start_requiring_login(user_password: &str) -> (Self, PathBuf) {
        Self::start_requiring_starttls_and(&["--auth", user_password])
    }

    /// The same, but a refused login gets no reply at all: the server stalls.
    pub fn start_stalling_on_bad_login(user_password: &str) -> (Self, PathBuf) {
        Self::start_requiring_starttls_and(&["--auth", user_password, "--stall-on-bad-login"])
    }

    fn start_requiring_starttls_and(options: &[&str]) -> (Self, PathBuf) {
        let dir = scratch_dir("smtp-tls");
        std::fs::create_dir_all(&dir).expect("cannot create the service folder");
        let dir_text = dir.to_string_lossy().into_owned();
        let mut all = vec!["--starttls", dir_text.as_str()];
        all.extend_from_slice(options);
        let mut server = Self::start_with(&dir, &all);
        server.process.scratch = Some(dir.clone());
        (server, dir.join("ca.pem"))
    }

    /// Defers (451) `share` of all recipients at random and rejects (550) those matching
    /// `reject`, into a scratch folder.
    pub fn start_flaky(reject: &str, share: f64) -> Self {
        let dir = scratch_dir("smtp-flaky");
        let share = share.to_string();
        let mut server = Self::start_with(&dir, &["--reject", reject, "--tempfail-rate", &share]);
        server.process.scratch = Some(dir);
        server
    }

    /// Stores the mail of recipients matching `late`, then acknowledges it only after
    /// `delay`; for those matching `dropped`, stores it and closes the connection unanswered.
    pub fn start_unsure(late: &str, delay: Duration, dropped: &str) -> Self {
        Self::start_hostile(&Hostility {
            late: (late, delay),
            dropped,
            ..Hostility::default()
        })
    }

    /// Every kind of SMTP fault at once, for the fault suite.
    pub fn start_hostile(hostility: &Hostility) -> Self {
        let dir = scratch_dir("smtp-hostile");
        let share = hostility.tempfail_share.to_string();
        let late_delay = hostility.late.1.as_secs_f64().to_string();
        let mut server = Self::start_with(
            &dir,
            &[
                "--reject",
                hostility.reject,
                "--tempfail-rate",
                &share,
                "--late-ack",
                hostility.late.0,
                "--late-ack-seconds",
                &late_delay,
                "--drop-after-dot",
                hostility.dropped,
            ],
        );
        server.process.scratch = Some(dir);
        server
    }

    /// Records into `dir/mail`, emptied first and kept after the server stops.
    pub fn start_in(dir: &Path, reject: &str, tempfail: &str) -> Self {
        Self::start_with(dir, &["--reject", reject, "--tempfail", tempfail])
    }

    fn start_with(dir: &Path, options: &[&str]) -> Self {
        let bin = python_bin();
        let port = free_port();
        let mail_dir = dir.join("mail");
        let _ = std::fs::remove_dir_all(&mail_dir);
        let mut process = ServiceProcess::spawn(
            "smtp",
            Command::new(bin.join("python"))
                .arg(project_root().join("scripts/smtp_recorder.py"))
                .args([
                    "--port",
                    &port.to_string(),
                    "--out",
                    &mail_dir.to_string_lossy(),
                ])
                .args(options),
            dir,
        );
        process.wait_for_port(port, Duration::from_secs(30));
        Self {
            process,
            port,
            mail_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Every mail accepted so far, in order of arrival.
    pub fn received(&self) -> Vec<ReceivedMail> {
        received_in(&self.mail_dir)
    }

    /// Email ids of the mails accepted, from their Message-ID, sorted.
    pub fn delivered_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .received()
            .iter()
            .filter_map(ReceivedMail::email_id)
            .collect();
        ids.sort();
        ids
    }
}
