//! The README's "Invoke one function locally" lines, run as a user would copy them:
//! `scripts/dev-stack.sh` brings the stack up, each `invoke` line runs the function's
//! built binary with its environment file under a local Lambda Runtime API (the
//! functions are already built by `cargo test`, so the script is pointed at them with
//! `DEV_STACK_BIN_DIR` instead of building them again inside a test), and `down` leaves
//! nothing running.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use symphony_tests::project_root;
use symphony_tests::services::{free_port, received_in};
use symphony_tests::stack::{FUNCTIONS, load_template};

/// The shell lines of the README's "Invoke one function locally" section, comments off.
fn readme_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(project_root().join("README.md")).expect("README.md");
    let section = readme
        .split("## Invoke one function locally")
        .nth(1)
        .expect("the README has an \"Invoke one function locally\" section");
    let block = symphony_tests::fenced_block(section, "sh").expect("the section has a sh block");
    block
        .lines()
        .map(|line| {
            line.split(" #")
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .filter(|line| !line.is_empty())
        .collect()
}

/// A dev stack in a scratch folder on free ports, brought down however the test ends.
struct DevStack {
    dir: PathBuf,
    moto_port: u16,
    smtp_port: u16,
}

impl DevStack {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("symphony-dev-stack-{}", uuid::Uuid::new_v4()));
        Self {
            dir,
            moto_port: free_port(),
            smtp_port: free_port(),
        }
    }

    /// Runs one README line (`scripts/dev-stack.sh ...`) in the project root.
    fn run(&self, line: &str) -> Output {
        let binaries = Path::new(env!("CARGO_BIN_EXE_dev-stack"))
            .parent()
            .expect("the binaries' folder")
            .to_path_buf();
        Command::new("bash")
            .args(["-c", line])
            .current_dir(project_root())
            .env("DEV_STACK_DIR", &self.dir)
            .env("DEV_STACK_MOTO_PORT", self.moto_port.to_string())
            .env("DEV_STACK_SMTP_PORT", self.smtp_port.to_string())
            .env("DEV_STACK_BIN_DIR", binaries)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {line}: {e}"))
    }

    fn pids(&self) -> Vec<u32> {
        ["moto", "smtp"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.dir.join(format!("{name}.pid"))).ok())
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    }
}

impl Drop for DevStack {
    fn drop(&mut self) {
        let _ = self.run("scripts/dev-stack.sh down");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_readme_line_runs_in_order_and_does_what_it_says() {
    let stack = DevStack::new();
    let lines = readme_lines();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("scripts/dev-stack.sh up")
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("scripts/dev-stack.sh down")
    );
    let mut answers = Vec::new();
    let mut pids_before_down = Vec::new();
    for line in &lines {
        if line.ends_with(" down") {
            pids_before_down = stack.pids();
        }
        let output = stack.run(line);
        let (stdout, stderr) = text(&output);
        assert!(
            output.status.success(),
            "{line} failed:\n{stdout}\n{stderr}"
        );
        if line.ends_with(" up") {
            // Up twice is harmless: nothing restarts, nothing is seeded again.
            let pids = stack.pids();
            let again = stack.run(line);
            assert!(text(&again).0.contains("already up"), "{}", text(&again).0);
            assert_eq!(stack.pids(), pids);
            check_environments(&stack.dir);
        }
        answers.push((line.clone(), stdout));
    }
    let answer = |wanted: &str| -> &str {
        answers
            .iter()
            .find(|(line, _)| line.contains(wanted))
            .map(|(_, stdout)| stdout.as_str())
            .unwrap_or_else(|| panic!("no README line with {wanted}"))
    };

    // The email tick dispatched the six seeded emails; each worker's good sample fully
    // succeeded and its bad records went to the dead-letter queue, not back to the queue
    let tick: serde_json::Value =
        serde_json::from_str(answer("process-email-queue events/")).expect("the tick's report");
    assert_eq!(
        (tick["due"].as_u64(), tick["dispatched"].as_u64()),
        (Some(6), Some(6))
    );
    for sample in [
        "example-sqs-email.json",
        "example-sqs-email-mixed.json",
        "example-sqs-campaign.json",
        "example-sqs-campaign-bad.json",
        "example-sqs-sms.json",
        "example-sqs-sms-bad.json",
    ] {
        let response: serde_json::Value =
            serde_json::from_str(answer(sample)).unwrap_or_else(|e| panic!("{sample}: {e}"));
        assert_eq!(
            response["batchItemFailures"],
            serde_json::json!([]),
            "{sample}"
        );
    }
    // The mail went out once each, the text too, and the dead letters say why
    let mut delivered: Vec<String> = received_in(&stack.dir.join("mail"))
        .iter()
        .filter_map(symphony_tests::ReceivedMail::email_id)
        .collect();
    delivered.sort();
    assert_eq!(delivered, ["email-0001", "email-0002", "email-0101"]);
    assert!(
        answer(" mail").contains("3 mails received"),
        "{}",
        answer(" mail")
    );
    assert!(
        answer(" texts").contains("+15550100: Step 0, Kim"),
        "{}",
        answer(" texts")
    );
    let dead = answer("dlq list");
    for reason in [
        "message body is not a valid envelope",
        "unknown message type \"FaxMessage\"",
        "missing field `campaignId`",
        "toPhone is not an E.164 number",
    ] {
        assert!(dead.contains(reason), "{reason}:\n{dead}");
    }
    // The API answered both samples
    assert!(answer("function-url-health").contains("\"statusCode\""));
    assert!(answer("function-url-metrics").contains("\"statusCode\": 200"));

    // And down left nothing running
    assert_eq!(pids_before_down.len(), 2);
    for pid in pids_before_down {
        assert!(!alive(pid), "pid {pid} still runs after down");
    }
}

/// Every function has an environment file holding every variable its template entry
/// sets, and the SAM file has the same.
fn check_environments(dir: &Path) {
    let template = load_template();
    let sam: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("sam-env.json")).expect("sam-env.json"),
    )
    .expect("sam-env.json is JSON");
    for (function, logical_id) in FUNCTIONS {
        let declared: BTreeSet<String> =
            template["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{logical_id} has no environment"))
                .keys()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect();
        let file = std::fs::read_to_string(dir.join("env").join(format!("{function}.env")))
            .unwrap_or_else(|e| panic!("{function}.env: {e}"));
        let written: BTreeSet<String> = file
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name.to_owned()))
            .collect();
        assert!(
            file.lines()
                .all(|line| line.contains("='") && line.ends_with('\'')),
            "{function}.env: every value single-quoted"
        );
        let missing: Vec<&String> = declared.difference(&written).collect();
        assert!(missing.is_empty(), "{function}.env lacks {missing:?}");
        assert!(written.contains("AWS_ENDPOINT_URL"), "{function}.env");
        for name in &declared {
            assert!(
                sam[logical_id][name].is_string(),
                "sam-env.json: {logical_id} lacks {name}"
            );
        }
    }
}

#[test]
fn every_invoke_line_names_a_function_and_an_event_file_and_every_event_has_a_line() {
    let functions: Vec<&str> = FUNCTIONS.iter().map(|(name, _)| *name).collect();
    let mut used = BTreeSet::new();
    for line in readme_lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.first(), Some(&"scripts/dev-stack.sh"), "{line}");
        if words.get(1) != Some(&"invoke") {
            continue;
        }
        let (function, event) = (words[2], words[3]);
        assert!(
            functions.contains(&function),
            "{line}: no function {function}"
        );
        assert!(
            project_root().join(event).is_file(),
            "{line}: no file {event}"
        );
        used.insert(event.trim_start_matches("events/").to_owned());
    }
    let all: BTreeSet<String> = std::fs::read_dir(project_root().join("events"))
        .expect("events/")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(used, all, "every sample event is invoked in the README");
}
