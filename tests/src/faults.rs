//! The fault-injection run: the real functions of all three jobs against moto and a flaky
//! SMTP server, with every fault a production run can meet, and an account of every unit.
//!
//! Units: queued emails, the leads of one-step campaigns (their emails go through the email
//! queue in turn) and SMS enrollments in a one-step sequence.
//! Faults: transient SMTP failures (451) and SNS throttling on a share of sends, permanent
//! rejections (550) and invalid phone numbers for another share, malformed and unknown
//! messages put straight on every queue, a worker killed mid-batch on every queue, two
//! overlapping ticks of every job with its flag moved (on, off, half rolled out) between
//! them, claim leases short enough to be taken over during the run; sends whose outcome
//! cannot be known (a mail server that stores the mail and acknowledges it late, or drops
//! the connection after the data's final dot; SNS that publishes and then answers 500, or
//! drops the connection); rows that do not parse in the emails, campaigns, leads and
//! enrollments tables; a queue refusing sends (AccessDenied); Secrets Manager throttling
//! the password reads of a mailbox that logs in; a tick and a worker given a real
//! deadline and cut at it mid-send, as Lambda would. Work is fed in waves (the per-tick
//! cap) so moto's queues stay shallow.
//!
//! The account is exact: every unit is sent once, or failed with its own reason (the
//! doomed and the poisoned), or held as an unknown outcome with its dead letter (every
//! unsure one, and any a killed worker left mid-send), and was delivered at most once.

use crate::world::{CampaignJob, EmailJob, SmsJob};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{Context, LambdaEvent};
use process_campaigns::ProcessCampaigns;
use process_email_queue::ProcessEmailQueue;
use process_sms_drip::ProcessSmsDrip;
use symphony_adapters::campaign::dynamo::{campaign_to_item, lead_to_item};
use symphony_adapters::sms::dynamo::{enrollment_to_item, sequence_to_item};
use symphony_aws::{ScheduledFunction, SqsWorker};
use symphony_core::{Envelope, WorkSource};
use symphony_jobs::campaign::CampaignProcessingMessage;
use symphony_jobs::email::EmailMessage;
use symphony_jobs::sms::SmsDripMessage;

use crate::seed;
use crate::services::{Hostility, Moto, ReceivedMail, SmtpServer};
use crate::world::{MAILBOX_ID, NEVER_QUIET, REJECTED_RECIPIENTS, World, run_tick};

/// Claims older than this are taken over by the next tick: short, so the run meets
/// takeovers of claims whose owner is still at work as well as of abandoned ones.
const CLAIM_LEASE_SECONDS: u64 = 10;
/// SNS refuses a throttled number this many times. The SDK does not retry `Publish` (our
/// code decides), so each refusal reaches the worker and its message comes back; two
/// leaves room under the queue's five receives for a killed worker's lost attempt.
const SNS_REFUSALS: u32 = 2;
/// SMTP recipients whose mail is acknowledged late, or whose connection is dropped after
/// the final dot; phone numbers SNS publishes to and then answers 500.
const LATE_RECIPIENTS: &str = "^late-";
const DROPPED_RECIPIENTS: &str = "^dropped-";
const UNSURE_PHONES: &str = "+1666";
const DROPPED_PHONES: &str = "+1667";
/// The late acknowledgement comes after this; the functions wait two seconds for it, and
/// those cut at their deadline about nine: well apart, so a loaded machine neither hears
/// the late one nor misses a prompt one.
const LATE_ACK: Duration = Duration::from_secs(15);
const REPLY_WAIT_SECONDS: &str = "2";
/// The email queue refuses this many sends (AccessDenied, as a missing grant would): the
/// ticks release those units, and later ticks send them.
const REFUSED_SENDS: usize = 3;
/// Secrets Manager refuses this many password reads as throttled (the SDK retries a
/// throttled read itself, so a few of them reach our code as a failed read).
const THROTTLED_SECRET_READS: usize = 8;
/// A mailbox on a second server that requires STARTTLS and a login, its password in
/// Secrets Manager; every tenth email goes through it.
const LOGIN_MAILBOX_ID: &str = "mailbox-login";
const LOGIN_PASSWORD: &str = "fault-Pa55";
/// The SMTP step timeout of the functions cut at their deadline. Their deadline leaves
/// the least time a send needs and 6 s (room for a loaded machine to reach the send), so
/// one starts and its wait for the verdict is cut by the deadline (at 13 s at most, under
/// `LATE_ACK`: the reply timeout is the template's ten minutes).
const CUT_STEP_SECONDS: u64 = 1;

/// How big a run, and how hostile.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    /// Units in all, shared out between the three jobs.
    pub units: usize,
    /// Units of each job seeded per wave (and the ticks' cap).
    pub wave: usize,
    /// Share of SMTP recipients deferred (451) at random, on every attempt, and share of
    /// phone numbers SNS throttles.
    pub transient_share: f64,
    /// Every n-th unit of each job goes to a recipient the server rejects for good (550),
    /// or to an invalid phone number.
    pub permanent_every: usize,
    /// Malformed and unknown messages put on each queue per wave (each).
    pub bad_messages_per_wave: usize,
    /// Every n-th unit of each job (offset from the doomed ones) meets a send whose outcome
    /// cannot be known.
    pub unsure_every: usize,
    /// Rows that do not parse seeded per wave, in the emails, campaigns, leads and
    /// enrollments tables.
    pub poison_per_wave: usize,
    /// Every n-th wave (from the first) ends with a tick and a worker cut at a real
    /// deadline mid-send; 0 never.
    pub deadline_cut_every: usize,
    /// Say on stderr when each wave is done (for long runs).
    pub progress: bool,
}

impl FaultPlan {
    pub fn ci() -> Self {
        Self {
            units: 300,
            wave: 25,
            transient_share: 0.15,
            permanent_every: 20,
            bad_messages_per_wave: 1,
            unsure_every: 25,
            poison_per_wave: 1,
            deadline_cut_every: 4,
            progress: false,
        }
    }

    /// The units of one job: an even share, the first jobs taking the remainder.
    pub fn units_of(&self, job: Job) -> usize {
        let index = job as usize;
        self.units / Job::ALL.len() + usize::from(index < self.units % Job::ALL.len())
    }
}

/// The three jobs, in the order their units are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    Email,
    Campaign,
    Sms,
}

impl Job {
    pub const ALL: [Job; 3] = [Job::Email, Job::Campaign, Job::Sms];

    pub fn name(self) -> &'static str {
        match self {
            Job::Email => "email queue",
            Job::Campaign => "campaigns",
            Job::Sms => "sms drip",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Job::Email => symphony_jobs::email::EMAIL_FLAG,
            Job::Campaign => symphony_jobs::campaign::CAMPAIGN_FLAG,
            Job::Sms => symphony_jobs::sms::SMS_FLAG,
        }
    }

    fn queue(self) -> &'static str {
        match self {
            Job::Email => "EmailQueue",
            Job::Campaign => "CampaignQueue",
            Job::Sms => "SmsQueue",
        }
    }

    fn dead_letter_queue(self) -> &'static str {
        match self {
            Job::Email => "EmailDeadLetterQueue",
            Job::Campaign => "CampaignDeadLetterQueue",
            Job::Sms => "SmsDeadLetterQueue",
        }
    }

    /// The rollout of this job's flag at a step of the run: each job goes round on, off
    /// and half rolled out, out of step with the others.
    fn rollout(self, step: usize) -> u8 {
        [100, 0, 50][(step + self as usize) % 3]
    }
}

/// One job's units, accounted for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    pub units: usize,
    /// Delivered exactly once.
    pub sent: usize,
    /// Not delivered, and in a dead-letter queue: with its error details when a worker put
    /// it there, or (redriven after `maxReceiveCount`) with its record saying why.
    pub dead_lettered: usize,
    /// Not delivered, and failed in its table with its own reason: a doomed unit (the
    /// recipient rejected, the number invalid) or a poisoned row (naming the attribute).
    pub failed_with_reason: usize,
    /// Held as an unknown outcome (`unknown`, or `sending` where a worker was killed
    /// mid-send), with its dead letter, delivered at most once.
    pub held: usize,
    /// Delivered more than once.
    pub duplicates: usize,
    /// None of the above, or not what its fate allows (a doomed unit sent, an unsure one
    /// not held, a held one without its dead letter): the count that must be zero.
    pub lost: usize,
    /// Units seeded to fail for good, to meet an unsure send, or as rows that do not parse.
    pub doomed: usize,
    pub unsure: usize,
    pub poisoned: usize,
    /// Doomed units held instead of failed: a kill caught them mid-send.
    pub doomed_held: usize,
    /// Deliveries that failed and came back for another attempt.
    pub retried_deliveries: usize,
    /// Units a tick released for a fault that was not theirs (the queue refusing sends).
    pub infrastructure_faults: usize,
    /// What the ticks did: units put on the queue, handled inline, and abandoned claims
    /// taken over (both routes and takeovers must have happened for the run to mean much).
    pub ticks: TickCounts,
    /// Units a killed worker left `sending`: the kill interrupted their send.
    pub killed_mid_send: usize,
    /// What was seen of each lost unit (the first few), to say why.
    pub lost_units: Vec<String>,
}

impl JobReport {
    fn add(&mut self, other: &JobReport) {
        self.units += other.units;
        self.sent += other.sent;
        self.dead_lettered += other.dead_lettered;
        self.failed_with_reason += other.failed_with_reason;
        self.held += other.held;
        self.duplicates += other.duplicates;
        self.lost += other.lost;
        self.infrastructure_faults += other.infrastructure_faults;
        self.ticks.add(other.ticks);
        self.killed_mid_send += other.killed_mid_send;
        self.doomed += other.doomed;
        self.unsure += other.unsure;
        self.poisoned += other.poisoned;
        self.doomed_held += other.doomed_held;
        self.retried_deliveries += other.retried_deliveries;
        self.lost_units.extend(other.lost_units.iter().cloned());
    }
}

impl std::fmt::Display for JobReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "units {} (doomed {}, unsure {}, poisoned {}): sent {}, failed with reason {}, \
             held {}, duplicates {}, lost {} (dead-lettered {}, retried deliveries {}, \
             infrastructure faults {}; ticks dispatched {}, legacy {}, took over {}; \
             killed mid-send {})",
            self.units,
            self.doomed,
            self.unsure,
            self.poisoned,
            self.sent,
            self.failed_with_reason,
            self.held,
            self.duplicates,
            self.lost,
            self.dead_lettered,
            self.retried_deliveries,
            self.infrastructure_faults,
            self.ticks.dispatched,
            self.ticks.legacy,
            self.ticks.taken_over,
            self.killed_mid_send
        )?;
        for lost in &self.lost_units {
            write!(f, "\n    lost: {lost}")?;
        }
        Ok(())
    }
}

/// What the ticks of a job reported, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickCounts {
    pub dispatched: usize,
    pub legacy: usize,
    pub taken_over: usize,
    pub infrastructure_faults: usize,
}

impl TickCounts {
    fn add(&mut self, other: TickCounts) {
        self.dispatched += other.dispatched;
        self.legacy += other.legacy;
        self.taken_over += other.taken_over;
        self.infrastructure_faults += other.infrastructure_faults;
    }

    fn of(report: &symphony_core::TickReport) -> Self {
        Self {
            dispatched: report.dispatched,
            legacy: report.legacy,
            taken_over: report.taken_over,
            infrastructure_faults: report.infrastructure_faults,
        }
    }
}

/// Every unit of every job, accounted for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultReport {
    pub jobs: Vec<(Job, JobReport)>,
    /// Injected malformed or unknown messages, and how many distinct ones reached a DLQ.
    pub bad_messages: usize,
    pub bad_messages_dead_lettered: usize,
    /// Every queue empty and no unit waiting or claimed when the run ended.
    pub settled: bool,
    /// Functions given a real deadline (ticks, workers), how many did not answer before
    /// it (Lambda would have killed them), and the late-acknowledged sends the deadline cut mid-send.
    pub deadline_runs: usize,
    pub deadline_overruns: usize,
    /// Late-acknowledged sends cut mid-send by a deadline (held, their evidence the
    /// deadline's wait): each function given one must have cut one.
    pub cut_mid_send: usize,
    /// Ticks among the functions given a deadline.
    pub deadline_ticks: usize,
    /// What became of the late emails seeded for those functions: id, status, evidence.
    pub deadline_sends: Vec<String>,
    pub elapsed: Duration,
}

impl FaultReport {
    /// All jobs together.
    pub fn total(&self) -> JobReport {
        let mut total = JobReport::default();
        for (_, job) in &self.jobs {
            total.add(job);
        }
        total
    }

    /// What the account breaks, if anything: the run must settle; per job, no duplicate and
    /// no lost unit; every doomed and poisoned unit failed with its own reason (or, doomed and
    /// caught mid-send by a kill, held); every unsure one held (a kill may hold more). Empty
    /// when the promise held.
    pub fn violations(&self) -> Vec<String> {
        let mut broken = Vec::new();
        if !self.settled {
            broken.push("the run did not settle".to_owned());
        }
        for (job, outcome) in &self.jobs {
            let name = job.name();
            if outcome.duplicates > 0 {
                broken.push(format!(
                    "{name}: {} sent more than once",
                    outcome.duplicates
                ));
            }
            if outcome.lost > 0 {
                broken.push(format!("{name}: {} not accounted for", outcome.lost));
            }
            if outcome.failed_with_reason + outcome.doomed_held != outcome.doomed + outcome.poisoned
            {
                broken.push(format!(
                    "{name}: {} failed with a reason and {} doomed ones held, but {} were \
                     doomed or poisoned",
                    outcome.failed_with_reason,
                    outcome.doomed_held,
                    outcome.doomed + outcome.poisoned
                ));
            }
            if outcome.held < outcome.unsure {
                broken.push(format!(
                    "{name}: {} held, but {} sends were unsure",
                    outcome.held, outcome.unsure
                ));
            }
        }
        if self.deadline_overruns > 0 {
            broken.push(format!(
                "{} of {} functions did not answer before their deadline",
                self.deadline_overruns, self.deadline_runs
            ));
        }
        // Each tick's late send is first in line and always cut; a worker's batch may hold
        // its late message or not (it is counted, not required).
        if self.cut_mid_send < self.deadline_ticks {
            broken.push(format!(
                "{} ticks were cut at their deadline, but only {} sends were cut mid-send",
                self.deadline_ticks, self.cut_mid_send
            ));
        }
        if self.bad_messages_dead_lettered != self.bad_messages {
            broken.push(format!(
                "{} of {} bad messages reached a DLQ",
                self.bad_messages_dead_lettered, self.bad_messages
            ));
        }
        broken
    }

    pub fn job(&self, job: Job) -> &JobReport {
        self.jobs
            .iter()
            .find_map(|(j, report)| (*j == job).then_some(report))
            .unwrap_or_else(|| panic!("no report for the {} job", job.name()))
    }
}

impl std::fmt::Display for FaultReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}; bad messages {} (dead-lettered {}); deadline runs {} (overran {}, sends cut \
             mid-send {}); settled {}; {:.1} s",
            self.total(),
            self.bad_messages,
            self.bad_messages_dead_lettered,
            self.deadline_runs,
            self.deadline_overruns,
            self.cut_mid_send,
            self.settled,
            self.elapsed.as_secs_f64()
        )?;
        for (job, report) in &self.jobs {
            writeln!(f, "  {:<12} {report}", job.name())?;
        }
        for send in &self.deadline_sends {
            writeln!(f, "  deadline send {send}")?;
        }
        Ok(())
    }
}

/// The functions of the run: two instances of every tick (they overlap), one worker each.
struct Functions {
    email_ticks: [ProcessEmailQueue; 2],
    campaign_ticks: [ProcessCampaigns; 2],
    sms_ticks: [ProcessSmsDrip; 2],
    email_worker: SqsWorker,
    campaign_worker: SqsWorker,
    sms_worker: SqsWorker,
    /// An email tick and worker run with a real deadline, on short SMTP steps.
    email_tick_cut: ProcessEmailQueue,
    email_worker_cut: SqsWorker,
}

impl Functions {
    async fn start(world: &World, plan: &FaultPlan, ca: &str) -> Self {
        let lease = CLAIM_LEASE_SECONDS.to_string();
        // Legacy campaign runs leave their emails queued for the email tick: room for both.
        let email_limit = (plan.wave * 2).to_string();
        let email_tick = [
            ("EMAIL_TICK_LIMIT", email_limit.as_str()),
            ("CLAIM_LEASE_SECONDS", &lease),
            ("SMTP_CA_FILE", ca),
        ];
        let email_env =
            world.function_env("ProcessEmailQueueFunction", &with_reply_wait(&email_tick));
        let cut_step = CUT_STEP_SECONDS.to_string();
        let mut cut_tick = email_tick.to_vec();
        cut_tick.push(("SMTP_TIMEOUT_SECONDS", &cut_step));
        let cut_tick_env = world.function_env("ProcessEmailQueueFunction", &cut_tick);
        let sms_limit = plan.wave.to_string();
        let sms_tick = [
            ("SMS_TICK_LIMIT", sms_limit.as_str()),
            ("CLAIM_LEASE_SECONDS", &lease),
            NEVER_QUIET[0],
            NEVER_QUIET[1],
        ];
        Self {
            email_ticks: [
                world.scheduled_in::<EmailJob>(&email_env).await,
                world.scheduled_in::<EmailJob>(&email_env).await,
            ],
            campaign_ticks: [
                world.scheduled::<CampaignJob>(&[]).await,
                world.scheduled::<CampaignJob>(&[]).await,
            ],
            sms_ticks: [
                world.scheduled::<SmsJob>(&sms_tick).await,
                world.scheduled::<SmsJob>(&sms_tick).await,
            ],
            email_worker: world
                .worker::<EmailJob>(&with_reply_wait(&[("SMTP_CA_FILE", ca)]))
                .await,
            campaign_worker: world.worker::<CampaignJob>(&[]).await,
            sms_worker: world.worker::<SmsJob>(&NEVER_QUIET).await,
            email_tick_cut: world.scheduled_in::<EmailJob>(&cut_tick_env).await,
            email_worker_cut: world
                .worker::<EmailJob>(&[("SMTP_CA_FILE", ca), ("SMTP_TIMEOUT_SECONDS", &cut_step)])
                .await,
        }
    }

    fn worker(&self, job: Job) -> &SqsWorker {
        match job {
            Job::Email => &self.email_worker,
            Job::Campaign => &self.campaign_worker,
            Job::Sms => &self.sms_worker,
        }
    }
}

/// The units seeded, per job, and what was done to them.
#[derive(Debug, Default)]
struct Units {
    emails: Vec<String>,
    /// (campaign id, lead id)
    leads: Vec<(String, String)>,
    /// Campaigns seeded as rows that do not parse (they have no leads).
    poisoned_campaigns: Vec<String>,
    /// (enrollment id, phone number)
    enrollments: Vec<(String, String)>,
    /// Each unit's fate, by its key (email id, `campaign/lead`, enrollment id); fine if absent.
    fates: HashMap<String, Fate>,
    /// Units (email or enrollment ids) a kill left `sending`: only they may be held for it.
    killed: HashSet<String>,
}

/// What the run did to a unit, and so what may become of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Bound to fail for good: a recipient the server rejects, an invalid number.
    Doomed,
    /// Its send's outcome cannot be known: it must be held.
    Unsure,
    /// A row that does not parse: it must be quarantined.
    Poisoned,
}

pub async fn run(plan: FaultPlan) -> FaultReport {
    let started = Instant::now();
    let throttle = format!("{}:{SNS_REFUSALS}", plan.transient_share);
    let refuse = format!("-email:{REFUSED_SENDS}");
    let throttled_reads = THROTTLED_SECRET_READS.to_string();
    let world = World::start_on(
        Moto::start_with(&[
            "--sns-throttle",
            &throttle,
            "--sns-unsure",
            UNSURE_PHONES,
            "--sns-drop",
            DROPPED_PHONES,
            "--secrets-throttle",
            &throttled_reads,
            "--sqs-refuse-sends",
            &refuse,
        ]),
        SmtpServer::start_hostile(&Hostility {
            reject: REJECTED_RECIPIENTS,
            tempfail_share: plan.transient_share,
            late: (LATE_RECIPIENTS, LATE_ACK),
            dropped: DROPPED_RECIPIENTS,
        }),
    )
    .await;
    let (login_server, ca) =
        SmtpServer::start_requiring_login(&format!("symphony:{LOGIN_PASSWORD}"));
    world
        .put_login_mailbox(LOGIN_MAILBOX_ID, login_server.port, LOGIN_PASSWORD)
        .await;
    let functions = Functions::start(&world, &plan, &ca.to_string_lossy()).await;
    let mut cuts = DeadlineCuts::default();
    seed::put_flag(
        &world.dynamo,
        world.flags_table(),
        symphony_core::flags::GLOBAL_FLAG,
        true,
        100,
    )
    .await;
    seed::put_item(
        &world.dynamo,
        world.stack.table("SmsSequencesTable"),
        sequence_to_item(&seed::sequence(SEQUENCE_ID, 1)),
    )
    .await;

    let mut units = Units::default();
    let mut retried: HashMap<Job, usize> = HashMap::new();
    let mut tick_counts: HashMap<Job, TickCounts> = HashMap::new();
    let mut killed_mid_send: HashMap<Job, usize> = HashMap::new();
    let mut bad_messages = 0;
    let waves = Job::ALL
        .iter()
        .map(|job| plan.units_of(*job).div_ceil(plan.wave.max(1)))
        .max()
        .unwrap_or(0);
    for wave in 0..waves {
        seed_wave(&world, &plan, wave, &mut units).await;
        // Two overlapping ticks of every job, its flag moved between their starts: a
        // rollout step or a rollback in the middle of a run.
        let step = wave * 2;
        let faults = tokio::join!(
            overlapping_ticks(&world, Job::Email, step, &functions.email_ticks),
            overlapping_ticks(&world, Job::Campaign, step, &functions.campaign_ticks),
            overlapping_ticks(&world, Job::Sms, step, &functions.sms_ticks),
        );
        count_ticks(&mut tick_counts, faults);
        for job in Job::ALL {
            bad_messages += put_bad_messages(&world, job, plan.bad_messages_per_wave).await;
            *killed_mid_send.entry(job).or_default() +=
                kill_a_worker_mid_batch(&world, job, functions.worker(job), &mut units.killed)
                    .await;
        }
        drain_all(&world, &functions, &mut retried).await;
        if plan.deadline_cut_every > 0 && wave.is_multiple_of(plan.deadline_cut_every) {
            let ticks = cut_at_deadlines(&world, &functions, wave, &mut units, &mut cuts).await;
            tick_counts.entry(Job::Email).or_default().add(ticks);
        }
        if plan.progress {
            eprintln!(
                "wave {}/{waves} done, {:.0} s",
                wave + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }

    // Roll every job back to legacy and let everything settle: ticks take what was
    // released or abandoned, workers drain what is queued, until every unit is done.
    for job in Job::ALL {
        set_rollout(&world, job, 0).await;
    }
    // It goes on while the open work shrinks: a large run settles over many ticks. It
    // gives up once nothing moved for longer than a lease and two minutes.
    let stall_limit = Duration::from_secs(CLAIM_LEASE_SECONDS + 120);
    let mut fewest_open = usize::MAX;
    let mut last_progress = Instant::now();
    let mut settled_in_time = false;
    loop {
        let faults = tokio::join!(
            overlapping_ticks(&world, Job::Email, 1, &functions.email_ticks),
            overlapping_ticks(&world, Job::Campaign, 0, &functions.campaign_ticks),
            overlapping_ticks(&world, Job::Sms, 2, &functions.sms_ticks),
        );
        count_ticks(&mut tick_counts, faults);
        drain_all(&world, &functions, &mut retried).await;
        let open = open_work(&world).await;
        if open == 0 {
            settled_in_time = true;
            break;
        }
        if open < fewest_open {
            fewest_open = open;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > stall_limit {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let mut report = account(&world, &login_server, &units).await;
    for (job, job_report) in &mut report.jobs {
        job_report.retried_deliveries = retried.get(job).copied().unwrap_or(0);
        let ticks = tick_counts.get(job).copied().unwrap_or_default();
        job_report.infrastructure_faults = ticks.infrastructure_faults;
        job_report.ticks = ticks;
        job_report.killed_mid_send = killed_mid_send.get(job).copied().unwrap_or(0);
    }
    report.bad_messages = bad_messages;
    report.settled = settled_in_time;
    report.deadline_runs = cuts.runs;
    report.deadline_overruns = cuts.overruns;
    report.deadline_ticks = cuts.ticks;
    report.elapsed = started.elapsed();
    report
}

/// The overrides, and the run's short wait for the verdict on the data.
fn with_reply_wait<'a>(overrides: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
    let mut all = overrides.to_vec();
    all.push(("SMTP_REPLY_TIMEOUT_SECONDS", REPLY_WAIT_SECONDS));
    all
}

/// Adds what the ticks of each job reported.
fn count_ticks(
    total: &mut HashMap<Job, TickCounts>,
    (email, campaign, sms): (TickCounts, TickCounts, TickCounts),
) {
    for (job, counts) in [
        (Job::Email, email),
        (Job::Campaign, campaign),
        (Job::Sms, sms),
    ] {
        total.entry(job).or_default().add(counts);
    }
}

const SEQUENCE_ID: &str = "fault-drip";

/// Seeds one wave of every job: queued emails, a one-step campaign with its leads, and
/// enrollments. Every `permanent_every`-th unit is bound to fail for good.
async fn seed_wave(world: &World, plan: &FaultPlan, wave: usize, units: &mut Units) {
    let doomed = |n: usize| plan.permanent_every > 0 && n.is_multiple_of(plan.permanent_every);
    // Offset from the doomed ones, so no unit is both.
    let unsure = |n: usize| {
        plan.unsure_every > 0 && n % plan.unsure_every == plan.unsure_every / 2 && !doomed(n)
    };
    // Half the unsure recipients get a late acknowledgement, half a dropped connection.
    let unsure_recipient = |n: usize, name: &str| {
        let way = if (n / plan.unsure_every.max(1)).is_multiple_of(2) {
            "late"
        } else {
            "dropped"
        };
        format!("{way}-{name}@example.com")
    };
    let range = |job: Job| {
        let first = wave * plan.wave;
        first.min(plan.units_of(job))..(first + plan.wave).min(plan.units_of(job))
    };

    for n in range(Job::Email) {
        let id = format!("unit-{n:05}");
        let to = if doomed(n) {
            units.fates.insert(id.clone(), Fate::Doomed);
            format!("bounce-{n}@example.com")
        } else if unsure(n) {
            units.fates.insert(id.clone(), Fate::Unsure);
            unsure_recipient(n, &id)
        } else {
            format!("lead-{n}@example.com")
        };
        // Every tenth plain one through the mailbox whose password reads are throttled.
        let mailbox = if units.fates.contains_key(&id) || n % 10 != 7 {
            MAILBOX_ID
        } else {
            LOGIN_MAILBOX_ID
        };
        let email = seed::queued_email(&id, mailbox, &to);
        seed::put_email(&world.dynamo, world.emails_table(), &email).await;
        units.emails.push(id);
    }

    let leads = range(Job::Campaign);
    if !leads.is_empty() {
        let campaign_id = format!("campaign-{wave:03}");
        seed::put_campaign(
            &world.dynamo,
            world.stack.table("CampaignsTable"),
            &seed::campaign(&campaign_id, MAILBOX_ID, 1),
        )
        .await;
        for n in leads {
            let lead_id = format!("lead-{n:05}");
            let mut lead = seed::lead(&campaign_id, &lead_id);
            let key = format!("{campaign_id}/{lead_id}");
            if doomed(n) {
                lead.email = format!("bounce-{lead_id}@example.com");
                units.fates.insert(key, Fate::Doomed);
            } else if unsure(n) {
                lead.email = unsure_recipient(n, &lead_id);
                units.fates.insert(key, Fate::Unsure);
            }
            seed::put_item(
                &world.dynamo,
                world.stack.table("CampaignLeadsTable"),
                lead_to_item(&lead),
            )
            .await;
            units.leads.push((campaign_id.clone(), lead_id));
        }
        // A lead without an address: it fails alone, the campaign's other leads go on.
        for i in 0..plan.poison_per_wave {
            let lead_id = format!("poison-lead-{i}");
            let mut item = lead_to_item(&seed::lead(&campaign_id, &lead_id));
            item.remove("email");
            seed::put_item(&world.dynamo, world.stack.table("CampaignLeadsTable"), item).await;
            units
                .fates
                .insert(format!("{campaign_id}/{lead_id}"), Fate::Poisoned);
            units.leads.push((campaign_id.clone(), lead_id));
        }
    }

    for n in range(Job::Sms) {
        let id = format!("enrollment-{n:05}");
        let phone = if doomed(n) {
            units.fates.insert(id.clone(), Fate::Doomed);
            format!("555-{n:04}")
        } else if unsure(n) {
            units.fates.insert(id.clone(), Fate::Unsure);
            // Half answered 500, half with the connection dropped.
            let prefix = if (n / plan.unsure_every.max(1)).is_multiple_of(2) {
                UNSURE_PHONES
            } else {
                DROPPED_PHONES
            };
            format!("{prefix}{n:07}")
        } else {
            format!("+1555{n:07}")
        };
        seed::put_item(
            &world.dynamo,
            world.stack.table("SmsEnrollmentsTable"),
            enrollment_to_item(&seed::enrollment(&id, SEQUENCE_ID, &phone)),
        )
        .await;
        units.enrollments.push((id, phone));
    }

    // Claims whose tick died between claiming and dispatching: no message anywhere, so
    // only a later tick's takeover (after the 10 s lease) gets them sent.
    let email_id = format!("orphan-email-{wave:03}");
    seed::put_email(
        &world.dynamo,
        world.emails_table(),
        &seed::queued_email(&email_id, MAILBOX_ID, &format!("{email_id}@example.com")),
    )
    .await;
    claim_as_a_dead_tick(world, "EmailsTable", "emailId", &email_id).await;
    units.emails.push(email_id);
    let enrollment_id = format!("orphan-enrollment-{wave:03}");
    let phone = format!("+1888{wave:07}");
    seed::put_item(
        &world.dynamo,
        world.stack.table("SmsEnrollmentsTable"),
        enrollment_to_item(&seed::enrollment(&enrollment_id, SEQUENCE_ID, &phone)),
    )
    .await;
    claim_as_a_dead_tick(world, "SmsEnrollmentsTable", "enrollmentId", &enrollment_id).await;
    units.enrollments.push((enrollment_id, phone));

    // Rows that do not parse, due first: they must fail alone, naming the attribute.
    for i in 0..plan.poison_per_wave {
        let id = format!("poison-email-{wave:03}-{i}");
        let mut item = symphony_adapters::email::dynamo::email_to_item(&seed::queued_email(
            &id,
            MAILBOX_ID,
            "poison@example.com",
        ));
        item.remove("subject");
        item.insert("dueAt".into(), AttributeValue::N("1".into()));
        seed::put_item(&world.dynamo, world.emails_table(), item).await;
        units.fates.insert(id.clone(), Fate::Poisoned);
        units.emails.push(id);

        let id = format!("poison-enrollment-{wave:03}-{i}");
        let phone = format!("+1777{wave:04}{i:03}");
        let mut item = enrollment_to_item(&seed::enrollment(&id, SEQUENCE_ID, &phone));
        item.insert("timeZone".into(), AttributeValue::S("Mars/Olympus".into()));
        seed::put_item(
            &world.dynamo,
            world.stack.table("SmsEnrollmentsTable"),
            item,
        )
        .await;
        units.fates.insert(id.clone(), Fate::Poisoned);
        units.enrollments.push((id, phone));

        let id = format!("poison-campaign-{wave:03}-{i}");
        let mut item = campaign_to_item(&seed::campaign(&id, MAILBOX_ID, 1));
        item.insert("windowEndHour".into(), AttributeValue::N("25".into()));
        seed::put_item(&world.dynamo, world.stack.table("CampaignsTable"), item).await;
        units.poisoned_campaigns.push(id);
    }
}

/// Marks a unit `claimed` now by a tick that then died.
async fn claim_as_a_dead_tick(world: &World, table: &str, key: &str, id: &str) {
    world
        .dynamo
        .update_item()
        .table_name(world.stack.table(table))
        .key(key, AttributeValue::S(id.to_owned()))
        .update_expression(
            "SET #s = :claimed, claimedAt = :now, claimToken = :token, claimedBy = :by",
        )
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":claimed", AttributeValue::S("claimed".into()))
        .expression_attribute_values(
            ":now",
            AttributeValue::N(chrono::Utc::now().timestamp().to_string()),
        )
        .expression_attribute_values(":token", AttributeValue::S("dead-tick".into()))
        .expression_attribute_values(":by", AttributeValue::S("legacy".into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot claim {id}: {e:?}"));
}

/// What the functions given a real deadline did.
#[derive(Debug, Default)]
struct DeadlineCuts {
    runs: usize,
    overruns: usize,
    ticks: usize,
}

/// Runs `invocation` as Lambda would with `budget` left: its context carries the deadline,
/// and it is dropped (killed) if it has not answered by then. `None` when it did not.
async fn within_deadline<T, F: Future<Output = T>>(
    budget: Duration,
    invocation: impl FnOnce(Context) -> F,
) -> Option<T> {
    let mut context = Context::default();
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).expect("after 1970");
    context.deadline = now_ms + u64::try_from(budget.as_millis()).expect("a short budget");
    tokio::time::timeout(budget, invocation(context)).await.ok()
}

/// A queued email to a recipient acknowledged late, due before everything else.
async fn seed_late_email(world: &World, id: &str, units: &mut Units) {
    let mut item = symphony_adapters::email::dynamo::email_to_item(&seed::queued_email(
        id,
        MAILBOX_ID,
        &format!("late-{id}@example.com"),
    ));
    item.insert("dueAt".into(), AttributeValue::N("2".into()));
    seed::put_item(&world.dynamo, world.emails_table(), item).await;
    units.fates.insert(id.to_owned(), Fate::Unsure);
    units.emails.push(id.to_owned());
}

/// A legacy email tick, then an email worker, each given just the least time a send needs
/// and a late-acknowledged recipient first: the send starts, the deadline cuts its wait for the verdict
/// (held as unknown), and what is left is not started (released, or returned to the queue).
async fn cut_at_deadlines(
    world: &World,
    functions: &Functions,
    wave: usize,
    units: &mut Units,
    cuts: &mut DeadlineCuts,
) -> TickCounts {
    let mut ticks = TickCounts::default();
    let budget = symphony_adapters::email::smtp::least_time(Duration::from_secs(CUT_STEP_SECONDS))
        + Duration::from_secs(6);

    seed_late_email(world, &format!("deadline-tick-{wave:03}"), units).await;
    set_rollout(world, Job::Email, 0).await;
    let answered = within_deadline(budget, |context| {
        functions.email_tick_cut.handle(LambdaEvent::new(
            crate::world::schedule_event("email-queue"),
            context,
        ))
    })
    .await;
    cuts.runs += 1;
    cuts.ticks += 1;
    match answered {
        Some(report) => {
            let report = report.unwrap_or_else(|error| panic!("the email tick failed: {error:?}"));
            ticks.add(TickCounts::of(&report));
        }
        None => cuts.overruns += 1,
    }

    // The worker: what the tick released goes first (through an ordinary tick and
    // worker), so the late email's message is alone in the batch that is cut.
    set_rollout(world, Job::Email, 100).await;
    ticks.add(TickCounts::of(
        &run_tick(&functions.email_ticks[0], "email-queue").await,
    ));
    world
        .drain_through(Job::Email.queue(), &functions.email_worker)
        .await;
    let id = format!("deadline-worker-{wave:03}");
    seed_late_email(world, &id, units).await;
    // The queue may still be refusing sends (the run's AccessDenied): tick until it is on.
    for _ in 0..=REFUSED_SENDS {
        ticks.add(TickCounts::of(
            &run_tick(&functions.email_ticks[0], "email-queue").await,
        ));
        if world.email(&id).await.status == symphony_jobs::email::EmailStatus::Claimed {
            break;
        }
    }
    let queue = world.stack.queue(Job::Email.queue());
    let overran = std::sync::atomic::AtomicBool::new(false);
    crate::drain_queue(&world.sqs, queue, 1, |event| {
        let overran = &overran;
        async move {
            let answered = within_deadline(budget, |context| {
                functions
                    .email_worker_cut
                    .handle(LambdaEvent::new(event.payload, context))
            })
            .await;
            match answered {
                Some(response) => response.unwrap_or_else(|never| match never {}),
                None => {
                    overran.store(true, std::sync::atomic::Ordering::Relaxed);
                    // Killed: every message of the batch comes back.
                    serde_json::from_value(serde_json::json!({
                        "batchItemFailures": [{"itemIdentifier": ""}]
                    }))
                    .expect("a batch response")
                }
            }
        }
    })
    .await;
    cuts.runs += 1;
    if overran.into_inner() {
        cuts.overruns += 1;
    }
    ticks
}

async fn set_rollout(world: &World, job: Job, percent: u8) {
    seed::put_flag(
        &world.dynamo,
        world.flags_table(),
        job.flag(),
        percent > 0,
        percent,
    )
    .await;
}

/// Two ticks of one job at once, the job's flag set for `step` before the first starts
/// and for `step + 1` before the second.
async fn overlapping_ticks<S: WorkSource>(
    world: &World,
    job: Job,
    step: usize,
    ticks: &[ScheduledFunction<S>; 2],
) -> TickCounts {
    let event = match job {
        Job::Email => "email-queue",
        Job::Campaign => "campaigns",
        Job::Sms => "sms-drip",
    };
    set_rollout(world, job, job.rollout(step)).await;
    let (first, second) = tokio::join!(run_tick(&ticks[0], event), async {
        set_rollout(world, job, job.rollout(step + 1)).await;
        run_tick(&ticks[1], event).await
    });
    let mut counts = TickCounts::of(&first);
    counts.add(TickCounts::of(&second));
    counts
}

/// Puts `count` malformed bodies and `count` envelopes of an unknown type on a job's queue;
/// returns how many.
async fn put_bad_messages(world: &World, job: Job, count: usize) -> usize {
    let queue = &world.stack.queue(job.queue()).url;
    for n in 0..count {
        seed::send_body(
            &world.sqs,
            queue,
            format!("{{\"id\": \"broken-{}-{n}", uuid::Uuid::new_v4()),
        )
        .await;
        let mut unknown = Envelope::wrap(
            &seed::queued_email("x", MAILBOX_ID, "x@example.com").message,
            "fault",
            None,
        )
        .expect("an envelope");
        unknown.message_type = "FaxMessage".into();
        seed::send_body(&world.sqs, queue, unknown.to_body()).await;
    }
    count * 2
}

/// Drains the campaign queue, then the email queue (campaigns feed it), alongside the SMS
/// queue; counts the failed deliveries of each.
async fn drain_all(world: &World, functions: &Functions, retried: &mut HashMap<Job, usize>) {
    let ((campaigns, emails), sms) = tokio::join!(
        async {
            let campaigns = world
                .drain_through(Job::Campaign.queue(), &functions.campaign_worker)
                .await;
            (
                campaigns,
                world.drain::<EmailJob>(&functions.email_worker).await,
            )
        },
        world.drain::<SmsJob>(&functions.sms_worker),
    );
    for (job, drained) in [
        (Job::Campaign, campaigns),
        (Job::Email, emails),
        (Job::Sms, sms),
    ] {
        *retried.entry(job).or_default() += drained.failed_deliveries;
    }
}

/// Receives one batch, starts the worker on it and kills it part-way, as a Lambda timeout
/// or crash would; the messages come back when their visibility runs out (here, at once).
/// Returns how many of its units the kill left `sending`.
async fn kill_a_worker_mid_batch(
    world: &World,
    job: Job,
    worker: &SqsWorker,
    killed: &mut HashSet<String>,
) -> usize {
    let queue = world.stack.queue(job.queue());
    let event = crate::receive_event(&world.sqs, queue, 180).await;
    if event.records.is_empty() {
        return 0;
    }
    let in_batch: Vec<String> = event
        .records
        .iter()
        .filter_map(|record| {
            Envelope::from_body(record.body.as_deref())
                .ok()
                .map(|envelope| envelope.meta.correlation_id)
        })
        .collect();
    // Units already `sending` (an earlier kill's, their messages still coming back) are
    // not this kill's doing.
    let before = sending_ids(world, job, &in_batch).await;
    let handles: Vec<String> = event
        .records
        .iter()
        .filter_map(|r| r.receipt_handle.clone())
        .collect();
    let handling = worker.handle(LambdaEvent::new(event, Context::default()));
    // Killed as soon as one of its records is talking to the server (some records done,
    // one mid-send, some not started), or after 2 s; a campaign's worker sends nothing,
    // so it is killed a few milliseconds in, part-way through its leads.
    let watch = async {
        if job == Job::Campaign {
            tokio::time::sleep(Duration::from_millis(15)).await;
            return;
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            if !sending_ids(world, job, &in_batch).await.is_subset(&before) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::select! {
        _ = handling => {}
        () = watch => {}
    }
    // A write already sent when the worker died still lands (DynamoDB applies what it
    // received): a unit another record's delivery was taking for sending may turn
    // `sending` just after the kill. Counted once those writes have landed.
    tokio::time::sleep(IN_FLIGHT_WRITES).await;
    // Those the kill caught talking to the server are left `sending`: only they may be
    // held for it.
    let caught: Vec<String> = sending_ids(world, job, &in_batch)
        .await
        .difference(&before)
        .cloned()
        .collect();
    let mid_send = caught.len();
    killed.extend(caught);
    for handle in handles {
        // Already deleted or moved on by the worker's routes: nothing to put back.
        let _ = world
            .sqs
            .change_message_visibility()
            .queue_url(&queue.url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
    mid_send
}

/// How long a write sent before a kill may take to land on moto.
const IN_FLIGHT_WRITES: Duration = Duration::from_millis(500);

/// Which of `ids` (a job's units) are `sending`. A campaign's units are its leads'
/// emails, created and enqueued by its worker, never sent by it: none. One query of the
/// due index's `sending` partition, so the watch of a kill polls fast enough to catch a
/// send on loopback mid-way.
async fn sending_ids(world: &World, job: Job, ids: &[String]) -> HashSet<String> {
    let (table, index, key) = match job {
        Job::Email => ("EmailsTable", "byStatusDueAt", "emailId"),
        Job::Sms => ("SmsEnrollmentsTable", "byStatusNextSendAt", "enrollmentId"),
        Job::Campaign => return HashSet::new(),
    };
    let wanted: HashSet<&String> = ids.iter().collect();
    let mut sending = HashSet::new();
    let mut start = None;
    loop {
        let page = world
            .dynamo
            .query()
            .table_name(world.stack.table(table))
            .index_name(index)
            .key_condition_expression("#s = :sending")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sending", AttributeValue::S("sending".into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("cannot query the units sending");
        for item in page.items() {
            let id = text(item, key).to_owned();
            if wanted.contains(&id) {
                sending.insert(id);
            }
        }
        match page.last_evaluated_key() {
            Some(last) if !last.is_empty() => start = Some(last.clone()),
            _ => return sending,
        }
    }
}

/// Messages on the queues, and units waiting, claimed or part-way through a campaign: 0
/// when the run has settled.
async fn open_work(world: &World) -> usize {
    let mut open = 0;
    for job in Job::ALL {
        open += seed::queue_depth(&world.sqs, &world.stack.queue(job.queue()).url).await;
    }
    let waiting = [
        ("EmailsTable", &["queued", "claimed"][..]),
        ("CampaignsTable", &["active"][..]),
        ("CampaignLeadsTable", &["active"][..]),
        ("SmsEnrollmentsTable", &["active", "claimed"][..]),
    ];
    for (table, statuses) in waiting {
        open += scan(world, table)
            .await
            .iter()
            .filter(|item| statuses.contains(&text(item, "status")))
            .count();
    }
    open
}

type Item = HashMap<String, AttributeValue>;

/// Every item of one of the template's tables.
async fn scan(world: &World, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let output = world
            .dynamo
            .scan()
            .table_name(world.stack.table(table))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot scan {table}: {e:?}"));
        items.extend(output.items().iter().cloned());
        start = output.last_evaluated_key().cloned();
        if start.is_none() {
            return items;
        }
    }
}

fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .map_or("", String::as_str)
}

/// What the dead-letter queues hold: the units in them, and the bad messages.
#[derive(Debug, Default)]
struct DeadLetters {
    /// Per unit, the (kind, reason) of each of its dead letters.
    emails: HashMap<String, Vec<(String, String)>>,
    campaigns: HashMap<String, Vec<(String, String)>>,
    enrollments: HashMap<String, Vec<(String, String)>>,
    /// A bad message can reach a DLQ twice (a worker killed after dead-lettering it but
    /// before its answer): each is counted once, by envelope id or body.
    bad: HashSet<String>,
}

async fn dead_letters(world: &World) -> DeadLetters {
    let mut dead = DeadLetters::default();
    for job in Job::ALL {
        let url = &world.stack.queue(job.dead_letter_queue()).url;
        for letter in seed::all_dead_letters(&world.sqs, url).await {
            let envelope = Envelope::from_body(Some(&letter.body)).ok();
            let unit = envelope
                .as_ref()
                .and_then(|e| match e.message_type.as_str() {
                    "EmailMessage" => e
                        .decode::<EmailMessage>()
                        .ok()
                        .map(|m| (&mut dead.emails, m.email_id)),
                    "CampaignProcessingMessage" => e
                        .decode::<CampaignProcessingMessage>()
                        .ok()
                        .map(|m| (&mut dead.campaigns, m.campaign_id)),
                    "SmsDripMessage" => e
                        .decode::<SmsDripMessage>()
                        .ok()
                        .map(|m| (&mut dead.enrollments, m.enrollment_id)),
                    _ => None,
                });
            match unit {
                Some((letters, id)) => {
                    letters
                        .entry(id)
                        .or_default()
                        .push((letter.kind.clone(), letter.reason.clone()));
                }
                None => {
                    dead.bad
                        .insert(envelope.map_or(letter.body.clone(), |e| e.id));
                }
            }
        }
    }
    dead
}

/// How often each key was delivered.
fn counted(keys: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// What became of one unit: how often it was delivered, its dead letters, whether its
/// message was in a killed batch, and its record's status and reason.
#[derive(Debug, Default)]
struct Seen<'a> {
    deliveries: usize,
    /// (kind, reason) of each of its own dead letters.
    letters: &'a [(String, String)],
    /// Another message that carried it (a campaign's) is in a DLQ.
    carrier_dead_lettered: bool,
    killed: bool,
    status: &'a str,
    reason: &'a str,
}

impl<'a> Seen<'a> {
    fn of(
        item: Option<&'a Item>,
        deliveries: usize,
        letters: Option<&'a Vec<(String, String)>>,
    ) -> Self {
        Self {
            deliveries,
            letters: letters.map_or(&[], Vec::as_slice),
            status: item.map_or("", |item| text(item, "status")),
            reason: item.map_or("", |item| text(item, "lastError")),
            ..Self::default()
        }
    }

    /// A dead letter a held unit may have: its unknown outcome, or the retries that met it
    /// mid-send (`sending`) until the queue gave up.
    fn has_held_letter(&self) -> bool {
        self.letters.iter().any(|(kind, reason)| {
            kind == "unknown-outcome"
                || (kind == "exhausted" && reason.contains("being sent by another delivery"))
        })
    }
}

/// What a job's records say of a unit sent, and what a doomed unit's reason names.
#[derive(Debug, Clone, Copy)]
struct Expect {
    sent_status: &'static str,
    doomed_cause: &'static str,
}

const EMAIL: Expect = Expect {
    sent_status: "sent",
    doomed_cause: "550",
};
const SMS: Expect = Expect {
    sent_status: "finished",
    doomed_cause: "E.164",
};

/// Sorts one unit by what became of it and what its fate allows. Anything else is lost.
fn tally(report: &mut JobReport, key: &str, fate: Option<Fate>, seen: &Seen, expect: Expect) {
    report.units += 1;
    match fate {
        Some(Fate::Doomed) => report.doomed += 1,
        Some(Fate::Unsure) => report.unsure += 1,
        Some(Fate::Poisoned) => report.poisoned += 1,
        None => {}
    }
    if !seen.letters.is_empty() || seen.carrier_dead_lettered {
        report.dead_lettered += 1;
    }
    let held = matches!(seen.status, "unknown" | "sending") && seen.has_held_letter();
    // Besides the unsure ones, only a unit a kill left mid-send, or a prompt one the
    // loaded machine made miss its verdict, may be held.
    let may_be_held = seen.killed || seen.reason.contains("no verdict from the server");
    let failed = seen.status == "failed";
    match (seen.deliveries, fate) {
        (2.., _) => report.duplicates += 1,
        (0 | 1, Some(Fate::Unsure)) if held => report.held += 1,
        (0 | 1, None) if held && may_be_held => report.held += 1,
        // A doomed unit caught mid-send by a kill is held like any other: its rejection
        // was never heard.
        (0 | 1, Some(Fate::Doomed)) if held && may_be_held => {
            report.held += 1;
            report.doomed_held += 1;
        }
        (1, None) if seen.status == expect.sent_status => report.sent += 1,
        (0, Some(Fate::Doomed)) if failed && seen.reason.contains(expect.doomed_cause) => {
            report.failed_with_reason += 1;
        }
        (0, Some(Fate::Poisoned)) if failed && seen.reason.contains("is invalid") => {
            report.failed_with_reason += 1;
        }
        _ => {
            report.lost += 1;
            if report.lost_units.len() < 10 {
                report
                    .lost_units
                    .push(format!("{key} ({fate:?}): {seen:?}"));
            }
        }
    }
}

async fn account(world: &World, login_server: &SmtpServer, units: &Units) -> FaultReport {
    let mails = counted(
        world
            .smtp
            .received()
            .iter()
            .chain(login_server.received().iter())
            .filter_map(ReceivedMail::email_id),
    );
    let texts = counted(
        world
            .moto
            .recorded_sms()
            .into_iter()
            .map(|(phone, _)| phone),
    );
    let dead = dead_letters(world).await;
    let by_key = |items: Vec<Item>, keys: &[&str]| -> HashMap<String, Item> {
        items
            .into_iter()
            .map(|item| {
                let key: Vec<&str> = keys.iter().map(|k| text(&item, k)).collect();
                (key.join("/"), item.clone())
            })
            .collect()
    };
    let emails = by_key(scan(world, "EmailsTable").await, &["emailId"]);
    let leads = by_key(
        scan(world, "CampaignLeadsTable").await,
        &["campaignId", "leadId"],
    );
    let enrollments = by_key(scan(world, "SmsEnrollmentsTable").await, &["enrollmentId"]);
    let campaigns = by_key(scan(world, "CampaignsTable").await, &["campaignId"]);
    let delivered = |counts: &HashMap<String, usize>, key: &str| counts.get(key).copied();

    let mut email_report = JobReport::default();
    for id in &units.emails {
        let seen = Seen {
            killed: units.killed.contains(id),
            ..Seen::of(
                emails.get(id),
                delivered(&mails, id).unwrap_or(0),
                dead.emails.get(id),
            )
        };
        tally(
            &mut email_report,
            id,
            units.fates.get(id).copied(),
            &seen,
            EMAIL,
        );
    }

    let deadline_sends = units
        .emails
        .iter()
        .filter(|id| id.starts_with("deadline-"))
        .map(|id| {
            let item = emails.get(id);
            format!(
                "{id}: {}, {}",
                item.map_or("absent", |item| text(item, "status")),
                item.map_or("", |item| text(item, "lastError"))
            )
        })
        .collect();
    // Only the functions given a deadline wait longer than the run's 2 s: any send held
    // after another wait was cut by their deadline (the first late one each met).
    let cut_mid_send = emails
        .values()
        .filter(|item| {
            text(item, "status") == "unknown" && cut_by_the_deadline(text(item, "lastError"))
        })
        .count();

    let mut campaign_report = JobReport::default();
    for campaign_id in &units.poisoned_campaigns {
        let seen = Seen::of(campaigns.get(campaign_id), 0, None);
        tally(
            &mut campaign_report,
            campaign_id,
            Some(Fate::Poisoned),
            &seen,
            EMAIL,
        );
    }
    for (campaign_id, lead_id) in &units.leads {
        let key = format!("{campaign_id}/{lead_id}");
        let email_id = format!("{campaign_id}.{lead_id}.0");
        // The lead's email, once made, says what became of it; before, the lead does.
        let record = emails.get(&email_id).or_else(|| leads.get(&key));
        let seen = Seen {
            killed: units.killed.contains(&email_id),
            carrier_dead_lettered: dead.campaigns.contains_key(campaign_id),
            ..Seen::of(
                record,
                delivered(&mails, &email_id).unwrap_or(0),
                dead.emails.get(&email_id),
            )
        };
        tally(
            &mut campaign_report,
            &key,
            units.fates.get(&key).copied(),
            &seen,
            EMAIL,
        );
    }

    let mut sms_report = JobReport::default();
    for (id, phone) in &units.enrollments {
        let seen = Seen {
            killed: units.killed.contains(id),
            ..Seen::of(
                enrollments.get(id),
                delivered(&texts, phone).unwrap_or(0),
                dead.enrollments.get(id),
            )
        };
        tally(
            &mut sms_report,
            id,
            units.fates.get(id).copied(),
            &seen,
            SMS,
        );
    }

    FaultReport {
        jobs: vec![
            (Job::Email, email_report),
            (Job::Campaign, campaign_report),
            (Job::Sms, sms_report),
        ],
        bad_messages_dead_lettered: dead.bad.len(),
        cut_mid_send,
        deadline_sends,
        ..FaultReport::default()
    }
}

/// Whether a held email's evidence shows its wait for the verdict cut short by the
/// deadline: shorter than the template's reply timeout, and not the run's own short wait.
fn cut_by_the_deadline(evidence: &str) -> bool {
    let Some((_, after)) = evidence.split_once("no verdict from the server within ") else {
        return false;
    };
    let seconds: String = after
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let reply_wait: f64 = REPLY_WAIT_SECONDS.parse().expect("a number of seconds");
    seconds
        .parse::<f64>()
        .is_ok_and(|waited| waited < LATE_ACK.as_secs_f64() && (waited - reply_wait).abs() > 0.001)
}
