//! The harness of Symphony's integration tests and local run: real services on
//! loopback (a moto server for SQS and DynamoDB, an aiosmtpd SMTP server), resources
//! created from `template.yaml`, and a queue drain that behaves like Lambda's SQS event
//! source mapping. Every process started here is stopped by PID when its handle drops.

pub mod calls;
pub mod cost;
pub mod drain;
pub mod faults;
pub mod logs;
pub mod runtime_api;
pub mod seed;
pub mod services;
pub mod stack;
pub mod world;

use std::path::PathBuf;

pub use drain::{DrainReport, drain_queue, receive_event};
pub use services::{Moto, ReceivedMail, SmtpServer};
pub use stack::Stack;

/// The repository's root folder. Read at run time (cargo sets `CARGO_MANIFEST_DIR` for
/// the tests and binaries it runs): with a target dir shared between clones, a path baked
/// in at compile time can name another clone's files.
pub fn project_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    // The package under test may sit deeper (tools/symphony): the root holds template.yaml.
    manifest
        .ancestors()
        .find(|dir| dir.join("template.yaml").is_file())
        .map(PathBuf::from)
        .unwrap_or(manifest)
}

/// The first fenced code block of language `lang` in a Markdown text, without its fences:
/// what the tests run of the docs (the runbook's queries, the README's lines).
pub fn fenced_block<'a>(markdown: &'a str, lang: &str) -> Option<&'a str> {
    markdown
        .split(&format!("```{lang}\n"))
        .nth(1)
        .and_then(|rest| rest.split("```").next())
}

/// A process's peak resident set so far, in KiB (`VmHWM`; 0 when it cannot be read): the
/// benchmarks' memory figure.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
