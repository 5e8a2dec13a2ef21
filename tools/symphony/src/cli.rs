//! The command line, as clap reads it.

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  symphony status                          every job at a glance
  symphony flags                           the flags as the functions read them
  symphony flags enable email --why \"phase 2\"
  symphony flags rollout email 25          a quarter of the emails go to symphony
  symphony flags enable --all              the guide's phase 4: the global switch and every job
  symphony flags history email
  symphony rollback email                  the next tick runs legacy; nothing is lost
  symphony rollback --all
  symphony dlq list email
  symphony dlq show <message-id>
  symphony dlq retry <message-id>          back to its queue, its history kept in the index
  symphony dlq retry --all --job email
  symphony unknown list
  symphony unknown resolve email <email-id> --sent
  symphony doctor

The stack comes from --stack or SYMPHONY_STACK. AWS access is the usual profile and
region; AWS_ENDPOINT_URL points every call at a local endpoint (a moto server).";

/// Watch, compare, roll back and repair a Symphony migration.
#[derive(Debug, Parser)]
#[command(name = "symphony", version, after_help = EXAMPLES)]
pub struct Cli {
    /// The stack's name (resources are named `<stack>-...`, as template.yaml names them).
    #[arg(long, env = "SYMPHONY_STACK", global = true)]
    pub stack: Option<String>,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every job: flags, rollout, queue and DLQ depth, last tick, throughput and error rate
    /// per path over the last hour.
    Status {
        /// The window of the figures, in minutes (1 to 1440).
        #[arg(long, default_value_t = 60)]
        minutes: u32,
    },
    /// List the flags, or change one (each change is recorded with who, when and why).
    Flags {
        #[command(subcommand)]
        action: Option<FlagsAction>,
    },
    /// The instant rollback: turn a job's flag (or, with --all, the global switch) off.
    Rollback {
        /// email, campaign or sms.
        job: Option<String>,
        /// Every job at once (the global switch).
        #[arg(long, conflicts_with = "job")]
        all: bool,
        #[arg(long, default_value = "rollback")]
        why: String,
    },
    /// Dead-lettered messages: list, show, retry, remove.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Units held as unknown outcomes (handed over, no answer), resolved by a person.
    Unknown {
        #[command(subcommand)]
        action: UnknownAction,
    },
    /// Check the guide's common issues and say what to do.
    Doctor,
}

#[derive(Debug, Subcommand)]
pub enum FlagsAction {
    /// Every flag as the functions read it.
    List,
    /// Turn a job's flag, the global switch, or all of them on.
    Enable(Switch),
    /// Turn a job's flag, the global switch, or all of them off.
    Disable(Switch),
    /// Send this percentage of a job's units to symphony (the rest stay legacy).
    Rollout {
        job: String,
        #[arg(value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
        #[arg(long, default_value = "rollout")]
        why: String,
    },
    /// Who changed which flag, when, from what to what, and why; newest first.
    History { job: Option<String> },
}

#[derive(Debug, Args)]
pub struct Switch {
    /// email, campaign or sms.
    #[arg(required_unless_present_any = ["global", "all"])]
    pub job: Option<String>,
    /// The global switch (SYMPHONY_ENABLED).
    #[arg(long, conflicts_with_all = ["job", "all"])]
    pub global: bool,
    /// The global switch and every job.
    #[arg(long, conflicts_with = "job")]
    pub all: bool,
    #[arg(long, default_value = "no reason given")]
    pub why: String,
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// The messages in each job's dead-letter queue (or one job's), with why.
    List { job: Option<String> },
    /// One message: type, unit, kind, reason, attempts, when; never its body.
    Show { id: String },
    /// Put messages back on their source queue (sent before they leave the DLQ).
    Retry {
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Every message of the job's DLQ (with --job) or of every job.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[arg(long, requires = "all")]
        job: Option<String>,
    },
    /// Delete a message from its DLQ for good.
    Remove { id: String },
}

#[derive(Debug, Subcommand)]
pub enum UnknownAction {
    /// Units held as unknown outcomes, with the evidence.
    List { job: Option<String> },
    /// Say what happened to a held unit: it went out (--sent), or it did not (--resend).
    Resolve {
        job: String,
        id: String,
        #[arg(long, required_unless_present = "resend", conflicts_with = "resend")]
        sent: bool,
        #[arg(long)]
        resend: bool,
    },
}
