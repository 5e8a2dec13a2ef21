//! `symphony`: the operator's command line. Run `symphony --help` for the commands and
//! examples; `docs/operations.md` is the runbook that uses them.
//!
//! Every command reads and writes the stack's own resources (named as `template.yaml`
//! names them) and prints text, or JSON with `--json`. A failure is a clear message on
//! stderr and a non-zero exit.

pub mod cli;

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use symphony_adapters::operations::{
    Deployment, FlagView, JOBS, JobSpec, Operations, QueueView, job_named,
};
use symphony_aws::operations::{DeadLetterEntry, FlagChange, FlagChangeError, FlagState};
use symphony_aws::{AwsError, DeadLetter, DeadLetterQueue};
use symphony_core::flags::GLOBAL_FLAG;
use symphony_core::{Ledger, LedgerRecord, Next, Transition, UnitState, Verdict};

pub use cli::Cli;
use cli::{Command, DlqAction, FlagsAction, Switch, UnknownAction};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no stack: pass --stack NAME or set SYMPHONY_STACK")]
    NoStack,
    #[error("{0:?} is not a job: use email, campaign or sms")]
    UnknownJob(String),
    #[error("no dead-lettered message {0} in any job's DLQ (`symphony dlq list` shows them)")]
    NoSuchMessage(String),
    #[error("{job} {id} does not exist")]
    NoSuchUnit { job: String, id: String },
    #[error("{job} {id} is {state}, not held as an unknown outcome; nothing was changed")]
    NotHeld {
        job: String,
        id: String,
        state: String,
    },
    #[error("{0} keeps no ledger of units: only email and sms units can be held")]
    NoLedger(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Flag(#[from] FlagChangeError),
    #[error("{hint}")]
    Aws {
        hint: String,
        #[source]
        source: AwsError,
    },
}

impl From<AwsError> for CliError {
    fn from(source: AwsError) -> Self {
        let hint = match source.code() {
            Some("ResourceNotFoundException") => {
                "a table of the stack does not exist (is the stack deployed, and --stack right?)"
            }
            Some(code) if code.contains("NonExistentQueue") => {
                "a queue of the stack does not exist (is the stack deployed, and --stack right?)"
            }
            Some("AccessDeniedException" | "AccessDenied") => {
                "access denied: the caller's role may not do this"
            }
            _ => "an AWS call failed (are credentials and region set? AWS_PROFILE, AWS_REGION)",
        };
        Self::Aws {
            hint: hint.to_owned(),
            source,
        }
    }
}

impl From<symphony_core::StoreError> for CliError {
    fn from(error: symphony_core::StoreError) -> Self {
        Self::Invalid(symphony_core::error::chain(&error))
    }
}

/// What a command printed, and whether it found a problem (a non-zero exit).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub text: String,
    pub json: Value,
    pub problems: bool,
}

impl Outcome {
    fn fine(text: String, json: Value) -> Self {
        Self {
            text,
            json,
            problems: false,
        }
    }
}

/// Who is acting, for the flag history: the caller's identity, else the local user.
#[derive(Debug, Clone)]
pub struct Context {
    pub ops: Operations,
    pub who: String,
}

impl Context {
    pub async fn connect(
        stack: Option<String>,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, CliError> {
        let stack = stack.filter(|s| !s.is_empty()).ok_or(CliError::NoStack)?;
        let ops = Operations::new(Deployment::new(stack), sdk, |name| std::env::var(name).ok());
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
        let who = match aws_sdk_sts::Client::new(sdk)
            .get_caller_identity()
            .send()
            .await
        {
            Ok(identity) => identity
                .arn()
                .map(|arn| format!("{arn} ({user})"))
                .unwrap_or(user),
            Err(_) => user,
        };
        Ok(Self { ops, who })
    }
}

pub async fn run(command: &Command, context: &Context) -> Result<Outcome, CliError> {
    let now = Utc::now();
    match command {
        Command::Status { minutes } => status(context, *minutes, now).await,
        Command::Flags { action } => match action {
            None | Some(FlagsAction::List) => list_flags(context).await,
            Some(FlagsAction::Enable(switch)) => switch_flags(context, switch, true, now).await,
            Some(FlagsAction::Disable(switch)) => switch_flags(context, switch, false, now).await,
            Some(FlagsAction::Rollout { job, percent, why }) => {
                let job = job_of(job)?;
                let change = |state: Option<FlagState>| FlagState {
                    enabled: state.is_some_and(|s| s.enabled),
                    rollout_percent: *percent,
                };
                let lines = change_flags(context, &[job.flag], change, why, now).await?;
                Ok(Outcome::fine(lines.join("\n"), json!({ "changes": lines })))
            }
            Some(FlagsAction::History { job }) => history(context, job.as_deref()).await,
        },
        Command::Rollback { job, all, why } => {
            rollback(context, job.as_deref(), *all, why, now).await
        }
        Command::Dlq { action } => match action {
            DlqAction::List { job } => dlq_list(context, job.as_deref()).await,
            DlqAction::Show { id } => dlq_show(context, id).await,
            DlqAction::Retry { id, all, job } => {
                dlq_retry(context, id.as_deref(), *all, job.as_deref(), now).await
            }
            DlqAction::Remove { id } => dlq_remove(context, id).await,
        },
        Command::Unknown { action } => match action {
            UnknownAction::List { job } => unknown_list(context, job.as_deref()).await,
            UnknownAction::Resolve {
                job,
                id,
                sent,
                resend: _,
            } => unknown_resolve(context, job, id, *sent, now).await,
        },
        Command::Doctor => doctor(context, now).await,
    }
}

fn job_of(name: &str) -> Result<&'static JobSpec, CliError> {
    job_named(name).ok_or_else(|| CliError::UnknownJob(name.to_owned()))
}

fn jobs_of(name: Option<&str>) -> Result<Vec<&'static JobSpec>, CliError> {
    match name {
        Some(name) => Ok(vec![job_of(name)?]),
        None => Ok(JOBS.iter().collect()),
    }
}

fn flag_text(view: &FlagView) -> String {
    match (&view.invalid, view.state()) {
        (Some(reason), _) => format!("invalid ({reason})"),
        (None, state) => FlagState::describe(state),
    }
}

/// What the functions do with these flags: the share of a job's units on symphony.
fn effective_share(global: Option<FlagState>, job: Option<FlagState>) -> u8 {
    match (global, job) {
        (Some(global), Some(job)) if global.enabled && job.enabled => job.rollout_percent,
        _ => 0,
    }
}

fn flag_of<'a>(flags: &'a [FlagView], name: &str) -> Option<&'a FlagView> {
    flags.iter().find(|f| f.name == name)
}

// ------------------------------------------------------------------ status

async fn status(context: &Context, minutes: u32, now: DateTime<Utc>) -> Result<Outcome, CliError> {
    let minutes = symphony_adapters::operations::parse_minutes(Some(&minutes.to_string()))
        .map_err(CliError::Invalid)?;
    let flags = context.ops.flags().await?;
    let metrics = context.ops.metrics(minutes, now).await?;
    let beats = context.ops.table().heartbeats().await?;
    let global = flag_of(&flags, GLOBAL_FLAG).and_then(FlagView::state);
    let mut text = format!(
        "stack {}   global switch {}   figures over {minutes} min\n\n",
        context.ops.deployment.stack,
        FlagState::describe(global)
    );
    let _ = writeln!(
        text,
        "{:<9} {:<10} {:>9} {:>7} {:>5} {:>5}  {:<16} {:>10} {:>10} {:>9} {:>9}",
        "job",
        "flag",
        "symphony",
        "queued",
        "busy",
        "dlq",
        "last tick",
        "sym/min",
        "leg/min",
        "sym err",
        "leg err"
    );
    let mut rows = Vec::new();
    for (job, figures) in JOBS.iter().zip(&metrics.jobs) {
        let flag = flag_of(&flags, job.flag);
        let share = effective_share(global, flag.and_then(FlagView::state));
        let beat = beats.iter().find(|b| b.function == job.tick_function);
        let age = beat
            .map(|b| ago(now, b.at))
            .unwrap_or_else(|| "never".into());
        let queue = figures.queue.clone().unwrap_or_default();
        let rate = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
        let _ = writeln!(
            text,
            "{:<9} {:<10} {:>8}% {:>7} {:>5} {:>5}  {:<16} {:>10.1} {:>10.1} {:>9} {:>9}",
            job.name,
            flag.map(flag_text).unwrap_or_default(),
            share,
            queue.visible + queue.delayed,
            queue.in_flight,
            queue.dead_letters,
            age,
            figures.symphony.throughput_per_minute,
            figures.legacy.throughput_per_minute,
            rate(figures.symphony.error_rate),
            rate(figures.legacy.error_rate),
        );
        rows.push(json!({
            "job": job.name,
            "flag": flag,
            "symphonyShare": share,
            "queue": queue,
            "lastTick": beat,
            "symphony": figures.symphony,
            "legacy": figures.legacy,
        }));
    }
    Ok(Outcome::fine(
        text,
        json!({ "stack": context.ops.deployment.stack, "globalSwitch": flag_of(&flags, GLOBAL_FLAG), "minutes": minutes, "jobs": rows }),
    ))
}

fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        0..=119 => format!("{seconds} s ago"),
        120..=7_199 => format!("{} min ago", seconds / 60),
        _ => format!("{} h ago", seconds / 3_600),
    }
}

// ------------------------------------------------------------------ flags

async fn list_flags(context: &Context) -> Result<Outcome, CliError> {
    let flags = context.ops.flags().await?;
    let global = flag_of(&flags, GLOBAL_FLAG).and_then(FlagView::state);
    let mut text = String::new();
    for view in &flags {
        let job = JOBS.iter().find(|job| job.flag == view.name);
        let note = match job {
            None => "the global switch".to_owned(),
            Some(job) => format!(
                "{}: {}% of units go to symphony",
                job.name,
                effective_share(global, view.state())
            ),
        };
        let _ = writeln!(text, "{:<40} {:<12} {note}", view.name, flag_text(view));
    }
    Ok(Outcome::fine(text, json!({ "flags": flags })))
}

async fn switch_flags(
    context: &Context,
    switch: &Switch,
    on: bool,
    now: DateTime<Utc>,
) -> Result<Outcome, CliError> {
    let mut names = Vec::new();
    if switch.global || switch.all {
        names.push(GLOBAL_FLAG);
    }
    if switch.all {
        names.extend(JOBS.iter().map(|job| job.flag));
    }
    if let Some(job) = &switch.job {
        names.push(job_of(job)?.flag);
    }
    let change = |state: Option<FlagState>| FlagState {
        enabled: on,
        rollout_percent: state.map_or(100, |s| s.rollout_percent),
    };
    let mut lines = change_flags(context, &names, change, &switch.why, now).await?;
    if on && !names.contains(&GLOBAL_FLAG) {
        let flags = context.ops.flags().await?;
        if !flag_of(&flags, GLOBAL_FLAG)
            .and_then(FlagView::state)
            .is_some_and(|g| g.enabled)
        {
            lines.push(
                "note: the global switch is off, so nothing goes to symphony yet (`symphony flags enable --global`)"
                    .to_owned(),
            );
        }
    }
    Ok(Outcome::fine(lines.join("\n"), json!({ "changes": lines })))
}

/// Changes each flag from what it is now to `change(now)`, each in a transaction with its
/// history entry; a flag already so is left (and no history written).
async fn change_flags(
    context: &Context,
    names: &[&str],
    change: impl Fn(Option<FlagState>) -> FlagState,
    why: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, CliError> {
    let flags = context.ops.flags().await?;
    let mut lines = Vec::new();
    for name in names {
        let view = flag_of(&flags, name);
        if let Some(reason) = view.and_then(|v| v.invalid.clone()) {
            return Err(CliError::Invalid(format!(
                "flag {name} does not parse ({reason}); fix the item by hand first"
            )));
        }
        let from = view.and_then(FlagView::state);
        let to = change(from);
        if from == Some(to) {
            lines.push(format!("{name}: already {}", FlagState::describe(Some(to))));
            continue;
        }
        let record = FlagChange {
            flag: (*name).to_owned(),
            at: now,
            who: context.who.clone(),
            from: FlagState::describe(from),
            to: FlagState::describe(Some(to)),
            why: why.to_owned(),
        };
        context
            .ops
            .table()
            .change_flag(&context.ops.deployment.flags_table(), from, to, &record)
            .await?;
        lines.push(format!("{name}: {} -> {}", record.from, record.to));
    }
    Ok(lines)
}

async fn history(context: &Context, job: Option<&str>) -> Result<Outcome, CliError> {
    let flag = match job {
        Some("global") => Some(GLOBAL_FLAG),
        Some(name) => Some(job_of(name)?.flag),
        None => None,
    };
    let changes = context.ops.table().flag_history(flag).await?;
    let mut text = String::new();
    if changes.is_empty() {
        text.push_str("no flag changes recorded\n");
    }
    for change in &changes {
        let _ = writeln!(
            text,
            "{}  {:<40} {} -> {}  by {}: {}",
            change.at.format("%Y-%m-%d %H:%M:%S"),
            change.flag,
            change.from,
            change.to,
            change.who,
            change.why
        );
    }
    Ok(Outcome::fine(text, json!({ "changes": changes })))
}

// ------------------------------------------------------------------ rollback

async fn rollback(
    context: &Context,
    job: Option<&str>,
    all: bool,
    why: &str,
    now: DateTime<Utc>,
) -> Result<Outcome, CliError> {
    let (names, jobs): (Vec<&str>, Vec<&JobSpec>) = match (job, all) {
        (_, true) => (vec![GLOBAL_FLAG], JOBS.iter().collect()),
        (Some(job), false) => {
            let job = job_of(job)?;
            (vec![job.flag], vec![job])
        }
        (None, false) => {
            return Err(CliError::Invalid(
                "name a job to roll back (email, campaign, sms) or pass --all".to_owned(),
            ));
        }
    };
    let off = |state: Option<FlagState>| FlagState {
        enabled: false,
        rollout_percent: state.map_or(100, |s| s.rollout_percent),
    };
    let mut lines = change_flags(context, &names, off, why, now).await?;
    let mut drains = Vec::new();
    for job in jobs {
        let queue = context.ops.queue(job).await?;
        let waiting = queue.visible + queue.in_flight + queue.delayed;
        lines.push(format!(
            "{}: the next {} tick runs every due unit on the legacy path; {waiting} message(s) still queued, which {} drains (each was claimed before it was queued, so none is sent twice)",
            job.name, job.tick_function, job.worker_function
        ));
        drains.push(json!({ "job": job.name, "nextTick": "legacy", "stillQueued": waiting, "queue": queue }));
    }
    Ok(Outcome::fine(
        lines.join("\n"),
        json!({ "changes": lines, "drain": drains }),
    ))
}

// ------------------------------------------------------------------ dead letters

async fn dead_letter_queue(context: &Context, job: &JobSpec) -> Result<DeadLetterQueue, CliError> {
    let deployment = &context.ops.deployment;
    Ok(DeadLetterQueue::new(
        context.ops.sqs().clone(),
        context.ops.queue_url(&deployment.queue(job)).await?,
        context
            .ops
            .queue_url(&deployment.dead_letter_queue(job))
            .await?,
    ))
}

fn entry_of(queue: &str, letter: &DeadLetter, now: DateTime<Utc>) -> DeadLetterEntry {
    DeadLetterEntry::new(
        queue,
        &letter.message_id,
        &letter.body,
        letter.error.as_ref(),
        now,
    )
}

/// One job's DLQ as it is now, and the index made to agree with it: a message the index
/// lacks is added (SQS moved it, or the worker's index write failed); an entry whose
/// message is gone is dropped, unless it records a retry (the message's history).
async fn reconcile(
    context: &Context,
    job: &JobSpec,
    now: DateTime<Utc>,
) -> Result<Vec<DeadLetterEntry>, CliError> {
    let queue = context.ops.deployment.dead_letter_queue(job);
    let letters = dead_letter_queue(context, job).await?.list().await?;
    let table = context.ops.table();
    let indexed = table.dead_letters(&queue).await?;
    let mut entries = Vec::with_capacity(letters.len());
    for letter in &letters {
        match indexed.iter().find(|e| e.message_id == letter.message_id) {
            Some(entry) => entries.push(entry.clone()),
            None => {
                let entry = entry_of(&queue, letter, now);
                table.index_dead_letter(&entry).await?;
                entries.push(entry);
            }
        }
    }
    for stale in indexed.iter().filter(|entry| {
        entry.retried_at.is_none() && !letters.iter().any(|l| l.message_id == entry.message_id)
    }) {
        table.remove_dead_letter(&queue, &stale.message_id).await?;
    }
    entries.sort_by_key(|entry| entry.dead_lettered_at);
    Ok(entries)
}

fn letter_line(entry: &DeadLetterEntry) -> String {
    let dash = |value: Option<&str>| value.filter(|v| !v.is_empty()).unwrap_or("-").to_owned();
    [
        entry.message_id.clone(),
        dash(entry.message_type.as_deref()),
        dash(entry.unit_id.as_deref()),
        entry.kind.clone(),
        entry.attempts.map_or("-".to_owned(), |a| a.to_string()),
        entry.dead_lettered_at.to_rfc3339(),
        dash(entry.reason.as_deref()),
    ]
    .map(|field| field.replace(['\t', '\n', '\r'], " "))
    .join("\t")
}

async fn dlq_list(context: &Context, job: Option<&str>) -> Result<Outcome, CliError> {
    let mut text = String::new();
    let mut listing = Vec::new();
    for job in jobs_of(job)? {
        let entries = reconcile(context, job, Utc::now()).await?;
        let _ = writeln!(
            text,
            "{} messages in {}",
            entries.len(),
            context.ops.deployment.dead_letter_queue(job)
        );
        if !entries.is_empty() {
            let _ = writeln!(
                text,
                "message id\ttype\tunit\tkind\tattempts\tdead-lettered\treason"
            );
        }
        for entry in &entries {
            let _ = writeln!(text, "{}", letter_line(entry));
        }
        listing.push(json!({ "job": job.name, "messages": entries.iter().map(entry_json).collect::<Vec<_>>() }));
    }
    Ok(Outcome::fine(text, json!({ "queues": listing })))
}

fn entry_json(entry: &DeadLetterEntry) -> Value {
    json!({
        "messageId": entry.message_id,
        "queue": entry.queue,
        "type": entry.message_type,
        "unitId": entry.unit_id,
        "kind": entry.kind,
        "reason": entry.reason,
        "attempts": entry.attempts,
        "deadLetteredAt": entry.dead_lettered_at,
        "retriedAt": entry.retried_at,
        "retriedBy": entry.retried_by,
    })
}

/// The job whose index knows `id`, reconciling each job's DLQ once if none does yet.
async fn find_letter(
    context: &Context,
    id: &str,
) -> Result<(&'static JobSpec, DeadLetterEntry), CliError> {
    for reconciled in [false, true] {
        for job in &JOBS {
            let queue = context.ops.deployment.dead_letter_queue(job);
            let entries = if reconciled {
                reconcile(context, job, Utc::now()).await?
            } else {
                context.ops.table().dead_letters(&queue).await?
            };
            if let Some(entry) = entries.into_iter().find(|e| e.message_id == id) {
                return Ok((job, entry));
            }
        }
    }
    Err(CliError::NoSuchMessage(id.to_owned()))
}

async fn dlq_show(context: &Context, id: &str) -> Result<Outcome, CliError> {
    let (job, entry) = find_letter(context, id).await?;
    let mut text = String::new();
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    for (name, value) in [
        ("message", entry.message_id.clone()),
        ("job", job.name.to_owned()),
        ("queue", entry.queue.clone()),
        ("type", dash(&entry.message_type)),
        ("unit", dash(&entry.unit_id)),
        ("kind", entry.kind.clone()),
        (
            "attempts",
            entry.attempts.map_or("-".to_owned(), |a| a.to_string()),
        ),
        ("dead-lettered", entry.dead_lettered_at.to_rfc3339()),
        ("reason", dash(&entry.reason)),
        (
            "retried",
            match (&entry.retried_at, &entry.retried_by) {
                (Some(at), by) => format!("{} by {}", at.to_rfc3339(), dash(by)),
                _ => "no".to_owned(),
            },
        ),
    ] {
        let _ = writeln!(text, "{name:<14} {value}");
    }
    Ok(Outcome::fine(text, entry_json(&entry)))
}

async fn dlq_retry(
    context: &Context,
    id: Option<&str>,
    all: bool,
    job: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Outcome, CliError> {
    let targets: Vec<(&JobSpec, Option<DeadLetterEntry>)> = match (id, all) {
        (Some(id), _) => {
            let (job, entry) = find_letter(context, id).await?;
            vec![(job, Some(entry))]
        }
        (None, true) => jobs_of(job)?.into_iter().map(|job| (job, None)).collect(),
        (None, false) => return Err(CliError::Invalid("retry needs an id or --all".to_owned())),
    };
    let mut lines = Vec::new();
    let mut moved_all = Vec::new();
    for (job, entry) in targets {
        let dead_letters = context.ops.deployment.dead_letter_queue(job);
        let indexed = context.ops.table().dead_letters(&dead_letters).await?;
        let queue = dead_letter_queue(context, job).await?;
        let wanted = entry.as_ref().map(|e| e.message_id.clone());
        let mut moved = Vec::new();
        let report = queue
            .redrive(
                |letter| wanted.as_ref().is_none_or(|id| *id == letter.message_id),
                |letter, done, of| {
                    // Bulk work shows its progress on stderr, so stdout stays the result.
                    eprintln!("moved {done}/{of}: {}", letter.message_id);
                    moved.push(letter.clone());
                },
            )
            .await?;
        if let Some(id) = &wanted
            && !report.moved.contains(id)
        {
            return Err(CliError::NoSuchMessage(id.clone()));
        }
        // The message's history stays in the index, marked retried: who and when (from
        // the message itself when the index did not know it yet).
        for letter in &moved {
            let mut retried = indexed
                .iter()
                .find(|e| e.message_id == letter.message_id)
                .cloned()
                .unwrap_or_else(|| entry_of(&dead_letters, letter, now));
            retried.retried_at = Some(now);
            retried.retried_by = Some(context.who.clone());
            context.ops.table().index_dead_letter(&retried).await?;
        }
        lines.push(format!(
            "{}: {} moved back to {}, {} left in {}",
            job.name,
            report.moved.len(),
            context.ops.deployment.queue(job),
            report.left,
            context.ops.deployment.dead_letter_queue(job)
        ));
        moved_all.push(json!({ "job": job.name, "moved": report.moved, "left": report.left }));
    }
    Ok(Outcome::fine(
        lines.join("\n"),
        json!({ "retried": moved_all }),
    ))
}

async fn dlq_remove(context: &Context, id: &str) -> Result<Outcome, CliError> {
    let (job, entry) = find_letter(context, id).await?;
    let removed = dead_letter_queue(context, job)
        .await?
        .remove(|letter| letter.message_id == id)
        .await?;
    if removed.is_empty() {
        return Err(CliError::NoSuchMessage(id.to_owned()));
    }
    context
        .ops
        .table()
        .remove_dead_letter(&entry.queue, id)
        .await?;
    Ok(Outcome::fine(
        format!("removed {id} from {}", entry.queue),
        json!({ "removed": id, "queue": entry.queue }),
    ))
}

// ------------------------------------------------------------------ unknown outcomes

/// A held unit as an operator sees it: never an address or a body.
fn held_json(job: &str, unit_id: &str, progress: &symphony_core::Progress) -> Value {
    json!({
        "job": job,
        "unitId": unit_id,
        "step": progress.step,
        "dueAt": DateTime::from_timestamp(progress.due_at, 0),
        "path": progress.claimed_by.map(|r| r.to_string()),
        "evidence": progress.last_error,
    })
}

async fn held_of<R: LedgerRecord>(
    job: &str,
    ledger: &dyn Ledger<R>,
) -> Result<Vec<Value>, CliError> {
    Ok(ledger
        .held(1_000)
        .await?
        .iter()
        .map(|record| held_json(job, record.unit_id(), &record.progress()))
        .collect())
}

async fn unknown_list(context: &Context, job: Option<&str>) -> Result<Outcome, CliError> {
    let mut held = Vec::new();
    for job in jobs_of(job)? {
        held.extend(match job.name {
            "email" => held_of(job.name, &email_ledger(context)).await?,
            "sms" => held_of(job.name, &enrollment_ledger(context)).await?,
            _ => Vec::new(),
        });
    }
    let mut text = format!("{} unit(s) held as unknown outcomes\n", held.len());
    for unit in &held {
        let _ = writeln!(
            text,
            "{}\t{}\tstep {}\t{}\t{}",
            unit["job"].as_str().unwrap_or_default(),
            unit["unitId"].as_str().unwrap_or_default(),
            unit["step"],
            unit["path"].as_str().unwrap_or("-"),
            unit["evidence"]
                .as_str()
                .unwrap_or("-")
                .replace(['\n', '\t'], " "),
        );
    }
    if !held.is_empty() {
        text.push_str("check the provider's log for each, then: symphony unknown resolve JOB ID --sent | --resend\n");
    }
    Ok(Outcome::fine(text, json!({ "held": held })))
}

fn email_ledger(context: &Context) -> impl Ledger<symphony_jobs::email::EmailRecord> {
    symphony_adapters::email::dynamo::email_ledger(
        context.ops.dynamo().clone(),
        context.ops.deployment.table("emails"),
    )
}

fn enrollment_ledger(context: &Context) -> impl Ledger<symphony_jobs::sms::Enrollment> {
    symphony_adapters::sms::dynamo::enrollment_ledger(
        context.ops.dynamo().clone(),
        context.ops.deployment.table("sms-enrollments"),
    )
}

async fn unknown_resolve(
    context: &Context,
    job: &str,
    id: &str,
    sent: bool,
    now: DateTime<Utc>,
) -> Result<Outcome, CliError> {
    let spec = job_of(job)?;
    let (verdict, moved) = match spec.name {
        "email" => {
            let ledger = email_ledger(context);
            let record = held_record(&ledger, spec, id).await?;
            let verdict = if sent {
                Verdict::Sent(Next::Done)
            } else {
                Verdict::Resend
            };
            let step = record.progress().step;
            (
                verdict,
                ledger.resolve(id, step, verdict, now.timestamp()).await?,
            )
        }
        "sms" => {
            let ledger = enrollment_ledger(context);
            let record = held_record(&ledger, spec, id).await?;
            let step = record.progress().step;
            let verdict = if sent {
                // It went out: the drip moves on as a send would have moved it.
                Verdict::Sent(next_sms_step(context, &record, step, now.timestamp()).await?)
            } else {
                Verdict::Resend
            };
            (
                verdict,
                ledger.resolve(id, step, verdict, now.timestamp()).await?,
            )
        }
        other => return Err(CliError::NoLedger(other.to_owned())),
    };
    if moved != Transition::Done {
        return Err(CliError::Invalid(format!(
            "{job} {id} changed while it was being resolved; run `symphony unknown list` again"
        )));
    }
    let what = match verdict {
        Verdict::Resend => "ready to send again at the next tick".to_owned(),
        Verdict::Sent(Next::Done) => "recorded as sent".to_owned(),
        Verdict::Sent(Next::Step { index, due_at }) => format!(
            "recorded as sent; step {index} is due at {}",
            DateTime::from_timestamp(due_at, 0).map_or_else(String::new, |at| at.to_rfc3339())
        ),
    };
    let resolution = if sent { "sent" } else { "resend" };
    // Its dead letters (the evidence a person needed) have served: the DLQ alarm clears.
    // Only those written before this resolution: a unit resent and held again since keeps
    // its new one.
    let removed = match remove_held_letters(context, spec, id, now).await {
        Ok(removed) => removed,
        Err(error) => {
            return Ok(Outcome {
                text: format!(
                    "{job} {id}: {what}; its dead letter could not be removed ({}): `symphony dlq list {job}`, then `symphony dlq remove ID`",
                    symphony_core::error::chain(&error)
                ),
                json: json!({ "job": job, "unitId": id, "resolution": resolution, "deadLettersRemoved": null }),
                problems: true,
            });
        }
    };
    Ok(Outcome::fine(
        format!(
            "{job} {id}: {what}; {} dead letter(s) of it removed",
            removed.len()
        ),
        json!({ "job": job, "unitId": id, "resolution": resolution, "deadLettersRemoved": removed }),
    ))
}

async fn remove_held_letters(
    context: &Context,
    job: &JobSpec,
    unit_id: &str,
    resolved_at: DateTime<Utc>,
) -> Result<Vec<String>, CliError> {
    let removed = dead_letter_queue(context, job)
        .await?
        .remove(|letter| {
            letter.unit_id.as_deref() == Some(unit_id)
                && letter.error.as_ref().is_some_and(|e| {
                    e.kind == symphony_core::DeadLetterKind::UnknownOutcome
                        && e.last_failure_at <= resolved_at
                })
        })
        .await?;
    let queue = context.ops.deployment.dead_letter_queue(job);
    for message_id in &removed {
        context
            .ops
            .table()
            .remove_dead_letter(&queue, message_id)
            .await?;
    }
    Ok(removed)
}

async fn held_record<R: LedgerRecord>(
    ledger: &dyn Ledger<R>,
    job: &JobSpec,
    id: &str,
) -> Result<R, CliError> {
    let record = ledger.get(id).await?.ok_or_else(|| CliError::NoSuchUnit {
        job: job.name.to_owned(),
        id: id.to_owned(),
    })?;
    let state = record.progress().state;
    if state != UnitState::Unknown {
        return Err(CliError::NotHeld {
            job: job.name.to_owned(),
            id: id.to_owned(),
            state: format!("{state:?}").to_lowercase(),
        });
    }
    Ok(record)
}

async fn next_sms_step(
    context: &Context,
    enrollment: &symphony_jobs::sms::Enrollment,
    step: usize,
    now: i64,
) -> Result<Next, CliError> {
    use symphony_jobs::sms::ports::SequenceStore;
    let sequences = symphony_adapters::sms::dynamo::DynamoSequenceStore::new(
        context.ops.dynamo().clone(),
        context.ops.deployment.table("sms-sequences"),
    );
    let sequence = sequences
        .get(&enrollment.sequence_id)
        .await
        .map_err(|e| CliError::Invalid(symphony_core::error::chain(&e)))?
        .ok_or_else(|| {
            CliError::Invalid(format!(
                "sequence {} of the enrollment does not exist",
                enrollment.sequence_id
            ))
        })?;
    Ok(match sequence.steps.get(step + 1) {
        Some(following) => Next::Step {
            index: step + 1,
            due_at: now + following.delay_hours * 3_600,
        },
        None => Next::Done,
    })
}

// ------------------------------------------------------------------ doctor

#[derive(Debug, Clone, serde::Serialize)]
struct Finding {
    check: String,
    /// `ok`, `problem` or `skipped`.
    result: &'static str,
    detail: String,
}

fn finding(check: impl Into<String>, result: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        result,
        detail: detail.into(),
    }
}

async fn doctor(context: &Context, now: DateTime<Utc>) -> Result<Outcome, CliError> {
    let mut findings = Vec::new();
    match context.ops.flags().await {
        Err(error) => findings.push(finding(
            "flags",
            "problem",
            format!(
                "the flag table cannot be read ({}): every tick falls back to legacy; check the table and the roles",
                symphony_core::error::chain(&error)
            ),
        )),
        Ok(flags) => findings.extend(flag_findings(&flags)),
    }
    let metrics = context.ops.metrics(60, now).await.ok();
    let health = context.ops.health(now).await;
    for job in &JOBS {
        findings.extend(queue_findings(context, job).await);
        if let Some(check) = health
            .checks
            .iter()
            .find(|c| c.name == format!("schedule:{}", job.tick_function))
        {
            findings.push(if check.healthy {
                finding(&check.name, "ok", "ticks are running")
            } else {
                finding(
                    &check.name,
                    "problem",
                    format!(
                        "{}: check that the schedule rule is enabled and the function's log group for errors",
                        check.detail["problem"].as_str().unwrap_or("the tick is not running")
                    ),
                )
            });
        }
        if let Some(figures) = metrics
            .as_ref()
            .and_then(|m| m.jobs.iter().find(|j| j.job == job.name))
        {
            let worker = &figures.symphony;
            findings.push(match worker.error_rate {
                Some(rate) if rate > 0.05 => finding(
                    format!("worker:{}", job.worker_function),
                    "problem",
                    format!(
                        "{:.1}% of its units failed in the last hour: `symphony dlq list {}` and its log group say why",
                        rate * 100.0,
                        job.name
                    ),
                ),
                _ => finding(
                    format!("worker:{}", job.worker_function),
                    "ok",
                    "error rate under 5% in the last hour",
                ),
            });
        }
        if job.ledger.is_some() {
            match context.ops.held_count(job).await {
                Ok(Some(count)) if count > 0 => findings.push(finding(
                    format!("held:{}", job.name),
                    "problem",
                    format!(
                        "{count} unit(s) held as unknown outcomes: `symphony unknown list {}`",
                        job.name
                    ),
                )),
                Ok(_) => findings.push(finding(format!("held:{}", job.name), "ok", "none held")),
                Err(error) => findings.push(finding(
                    format!("held:{}", job.name),
                    "problem",
                    symphony_core::error::chain(&error),
                )),
            }
        }
    }
    for (check, why) in [
        (
            "schedule rules enabled",
            "needs the EventBridge API, which this version does not call; a disabled rule shows as a missed schedule above",
        ),
        (
            "event source mappings enabled",
            "needs the Lambda API, which this version does not call; a disabled mapping shows as a queue that fills and is never drained",
        ),
        (
            "visibility timeout vs the worker's timeout",
            "needs the Lambda API for the deployed timeout; template.yaml's values are checked by its tests",
        ),
    ] {
        findings.push(finding(check, "skipped", why));
    }
    let problems = findings.iter().filter(|f| f.result == "problem").count();
    let mut text = String::new();
    for f in &findings {
        let _ = writeln!(text, "{:<8} {:<42} {}", f.result, f.check, f.detail);
    }
    let _ = writeln!(text, "\n{problems} problem(s) found");
    Ok(Outcome {
        text,
        json: json!({ "problems": problems, "findings": findings }),
        problems: problems > 0,
    })
}

fn flag_findings(flags: &[FlagView]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for view in flags.iter().filter(|v| v.invalid.is_some()) {
        findings.push(finding(
            format!("flag {}", view.name),
            "problem",
            format!(
                "does not parse ({}): the functions fall back to off",
                view.invalid.clone().unwrap_or_default()
            ),
        ));
    }
    let global = flag_of(flags, GLOBAL_FLAG).and_then(FlagView::state);
    let global_on = global.is_some_and(|g| g.enabled);
    for job in &JOBS {
        let state = flag_of(flags, job.flag).and_then(FlagView::state);
        let name = format!("flag {}", job.name);
        findings.push(match state {
            Some(s) if s.enabled && !global_on => finding(
                name,
                "problem",
                "on, but the global switch is off: nothing goes to symphony (`symphony flags enable --global`, or disable the job)",
            ),
            Some(s) if s.enabled && s.rollout_percent == 0 => finding(
                name,
                "problem",
                "on at 0%: nothing goes to symphony (`symphony flags rollout JOB N`)",
            ),
            _ => finding(
                name,
                "ok",
                format!("{}% of units go to symphony", effective_share(global, state)),
            ),
        });
    }
    findings
}

async fn queue_findings(context: &Context, job: &JobSpec) -> Vec<Finding> {
    let mut findings = Vec::new();
    let name = context.ops.deployment.queue(job);
    let redrive = async {
        let url = context.ops.queue_url(&name).await?;
        let output = context
            .ops
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetQueueAttributes", e))?;
        Ok::<_, AwsError>(
            output
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy))
                .cloned(),
        )
    };
    findings.push(match redrive.await {
        Ok(Some(_)) => finding(format!("redrive {name}"), "ok", "failed messages end in its DLQ"),
        Ok(None) => finding(
            format!("redrive {name}"),
            "problem",
            "no redrive policy: a message that always fails is retried for ever and never reaches the DLQ; deploy template.yaml's RedrivePolicy",
        ),
        Err(error) => finding(format!("redrive {name}"), "problem", symphony_core::error::chain(&error)),
    });
    match context.ops.queue(job).await {
        Ok(QueueView { dead_letters, .. }) if dead_letters > 0 => findings.push(finding(
            format!("dlq {}", context.ops.deployment.dead_letter_queue(job)),
            "problem",
            format!(
                "{dead_letters} message(s): `symphony dlq list {}`, fix the cause, then `symphony dlq retry`",
                job.name
            ),
        )),
        Ok(_) => findings.push(finding(
            format!("dlq {}", context.ops.deployment.dead_letter_queue(job)),
            "ok",
            "empty",
        )),
        Err(error) => findings.push(finding(
            format!("queues of {}", job.name),
            "problem",
            symphony_core::error::chain(&error),
        )),
    }
    findings
}
