//! Everything the jobs need, running for real on loopback: a moto server with the
//! template's queues and tables, an SMTP server, and the functions wired to them.

use std::collections::HashMap;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Context, LambdaEvent};
pub use symphony_adapters::job::{CampaignJob, EmailJob, SmsJob};
use symphony_adapters::job::{Job, scheduled_function};
use symphony_adapters::wiring::metrics_sink;
use symphony_aws::{ScheduledFunction, SqsWorker};
use symphony_core::{TickReport, WorkSource};
use symphony_jobs::email::EMAIL_FLAG;

use crate::seed;
use crate::services::{Moto, SmtpServer};
use crate::stack::Stack;
use crate::{DrainReport, drain_queue, project_root};

/// Recipients the SMTP server rejects for good (550) or for now (451).
pub const REJECTED_RECIPIENTS: &str = "^bounce";
pub const TEMPFAIL_RECIPIENTS: &str = "^busy";
pub const MAILBOX_ID: &str = "mailbox-1";
/// SMS quiet hours that never apply (the SMS functions' override), so a run does not
/// depend on the time of day.
pub const NEVER_QUIET: [(&str, &str); 2] =
    [("SMS_QUIET_START_HOUR", "0"), ("SMS_QUIET_END_HOUR", "0")];

#[derive(Debug)]
pub struct World {
    pub moto: Moto,
    pub smtp: SmtpServer,
    pub stack: Stack,
    pub sdk: aws_config::SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl World {
    /// Starts the services, creates the template's resources and a loopback mailbox.
    pub async fn start() -> Self {
        Self::start_with(SmtpServer::start(REJECTED_RECIPIENTS, TEMPFAIL_RECIPIENTS)).await
    }

    /// The same, with the SMTP server recording into a folder that outlives it.
    pub async fn start_keeping_mail(dir: &std::path::Path) -> Self {
        Self::start_with(SmtpServer::start_in(
            dir,
            REJECTED_RECIPIENTS,
            TEMPFAIL_RECIPIENTS,
        ))
        .await
    }

    /// The same, with an SMTP server of the caller's choosing.
    pub async fn start_with(smtp: SmtpServer) -> Self {
        Self::start_on(Moto::start(), smtp).await
    }

    /// The same, on services of the caller's choosing.
    pub async fn start_on(moto: Moto, smtp: SmtpServer) -> Self {
        let sdk = moto.sdk_config().await;
        let stack = Stack::provision(&sdk, "symphony-local").await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        seed::put_loopback_mailbox(
            &dynamo,
            stack.table("MailboxesTable"),
            MAILBOX_ID,
            smtp.port,
        )
        .await;
        Self {
            moto,
            smtp,
            stack,
            sdk,
            dynamo,
            sqs,
        }
    }

    pub fn emails_table(&self) -> &str {
        self.stack.table("EmailsTable")
    }

    pub fn flags_table(&self) -> &str {
        self.stack.table("FlagsTable")
    }

    pub async fn set_email_flag(&self, enabled: bool) {
        seed::set_job_flags(&self.dynamo, self.flags_table(), EMAIL_FLAG, enabled).await;
    }

    /// Seeds queued emails `<prefix>-1` … `<prefix>-<count>` to `<prefix>-<n>@example.com`.
    pub async fn seed_emails(&self, prefix: &str, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        for n in 1..=count {
            let id = format!("{prefix}-{n}");
            let to = format!("{id}@example.com");
            seed::put_email(
                &self.dynamo,
                self.emails_table(),
                &seed::queued_email(&id, MAILBOX_ID, &to),
            )
            .await;
            ids.push(id);
        }
        ids
    }

    /// Email ids of the mails the SMTP server accepted, sorted.
    pub fn delivered_ids(&self) -> Vec<String> {
        self.smtp.delivered_ids()
    }

    /// Puts a queued email, due a minute ago, as the web app would.
    pub async fn queue_email(&self, email_id: &str, mailbox_id: &str, to_email: &str) {
        let email = seed::queued_email(email_id, mailbox_id, to_email);
        seed::put_email(&self.dynamo, self.emails_table(), &email).await;
    }

    /// A mailbox of `user-1` on an SMTP server at `port` that logs in as `symphony` over
    /// STARTTLS, its password stored in Secrets Manager under its owner's folder,
    /// `<stack>/smtp/user-1/<mailbox_id>`. Returns the secret's name.
    pub async fn put_login_mailbox(&self, mailbox_id: &str, port: u16, password: &str) -> String {
        let name = format!("{}/smtp/user-1/{mailbox_id}", self.stack.name);
        seed::create_secret(&self.sdk, &name, password).await;
        seed::put_login_mailbox(
            &self.dynamo,
            self.stack.table("MailboxesTable"),
            mailbox_id,
            port,
            &format!("secretsmanager:{name}"),
        )
        .await;
        name
    }

    /// An email's record, read consistently.
    pub async fn email(&self, email_id: &str) -> symphony_jobs::email::EmailRecord {
        seed::get_email(&self.dynamo, self.emails_table(), email_id).await
    }
}

impl World {
    pub async fn set_flag(&self, job_flag: &str, enabled: bool) {
        seed::set_job_flags(&self.dynamo, self.flags_table(), job_flag, enabled).await;
    }

    /// Every email record, sorted by id.
    pub async fn all_emails(&self) -> Vec<symphony_jobs::email::EmailRecord> {
        let output = self
            .dynamo
            .scan()
            .table_name(self.emails_table())
            .consistent_read(true)
            .send()
            .await
            .expect("cannot scan the emails table");
        let mut emails: Vec<_> = output
            .items()
            .iter()
            .map(|item| {
                symphony_adapters::email::dynamo::email_from_item(item).expect("a valid email item")
            })
            .collect();
        emails.sort_by(|a, b| a.message.email_id.cmp(&b.message.email_id));
        emails
    }
}

/// A job as the tests drive it: where the template declares its two functions and its
/// queue, and its sample schedule event in `events/`.
pub trait TestJob: Job {
    const TICK_FUNCTION: &'static str;
    const WORKER_FUNCTION: &'static str;
    const QUEUE: &'static str;
    const SCHEDULE_EVENT: &'static str;
}

impl TestJob for EmailJob {
    const TICK_FUNCTION: &'static str = "ProcessEmailQueueFunction";
    const WORKER_FUNCTION: &'static str = "HandleEmailFunction";
    const QUEUE: &'static str = "EmailQueue";
    const SCHEDULE_EVENT: &'static str = "email-queue";
}

impl TestJob for CampaignJob {
    const TICK_FUNCTION: &'static str = "ProcessCampaignsFunction";
    const WORKER_FUNCTION: &'static str = "HandleCampaignFunction";
    const QUEUE: &'static str = "CampaignQueue";
    const SCHEDULE_EVENT: &'static str = "campaigns";
}

impl TestJob for SmsJob {
    const TICK_FUNCTION: &'static str = "ProcessSmsDripFunction";
    const WORKER_FUNCTION: &'static str = "HandleSmsFunction";
    const QUEUE: &'static str = "SmsQueue";
    const SCHEDULE_EVENT: &'static str = "sms-drip";
}

impl World {
    /// `J`'s scheduled function as the template configures it, with `overrides` on top.
    pub async fn scheduled<J: TestJob>(
        &self,
        overrides: &[(&str, &str)],
    ) -> ScheduledFunction<J::Work> {
        self.scheduled_in::<J>(&self.function_env(J::TICK_FUNCTION, overrides))
            .await
    }

    /// The environment the template gives `J`'s scheduled function.
    pub fn tick_env<J: TestJob>(&self) -> HashMap<String, String> {
        self.function_env(J::TICK_FUNCTION, &[])
    }

    /// `J`'s scheduled function with exactly the environment `env`.
    pub async fn scheduled_in<J: TestJob>(
        &self,
        env: &HashMap<String, String>,
    ) -> ScheduledFunction<J::Work> {
        let config = J::tick_config(env).expect("a valid configuration");
        let function = scheduled_function::<J>(&config, &self.sdk)
            .await
            .unwrap_or_else(|error| panic!("{} cannot start: {error}", J::TICK_FUNCTION));
        match metrics_sink(env, &self.sdk, false) {
            Some(sink) => function.with_metrics(J::NAME, sink),
            None => function,
        }
    }

    /// `J`'s worker as the template configures it, with `overrides` on top.
    pub async fn worker<J: TestJob>(&self, overrides: &[(&str, &str)]) -> SqsWorker {
        let env = self.function_env(J::WORKER_FUNCTION, overrides);
        let config = J::worker_config(&env).expect("a valid configuration");
        let worker = J::worker(&config, &self.sdk)
            .await
            .unwrap_or_else(|error| panic!("{} cannot start: {error}", J::WORKER_FUNCTION));
        match metrics_sink(&env, &self.sdk, false) {
            Some(sink) => worker.with_metrics(J::NAME, sink),
            None => worker,
        }
    }

    /// One tick of `J`'s scheduled function, with its sample schedule event.
    pub async fn tick<J: TestJob>(&self, function: &ScheduledFunction<J::Work>) -> TickReport {
        run_tick(function, J::SCHEDULE_EVENT).await
    }

    /// Drains `J`'s queue through its worker.
    pub async fn drain<J: TestJob>(&self, worker: &SqsWorker) -> DrainReport {
        self.drain_through(J::QUEUE, worker).await
    }
}

impl World {
    /// A function's environment as the template declares it, with `overrides` on top.
    pub fn function_env(
        &self,
        function_id: &str,
        overrides: &[(&str, &str)],
    ) -> HashMap<String, String> {
        let mut env = self.stack.function_env(function_id);
        for (name, value) in overrides {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        env
    }

    /// Drains one of the template's queues through a worker.
    pub async fn drain_through(&self, queue_id: &str, worker: &SqsWorker) -> DrainReport {
        drain_queue(&self.sqs, self.stack.queue(queue_id), 200, |event| async {
            worker
                .handle(event)
                .await
                .unwrap_or_else(|never| match never {})
        })
        .await
    }
}

/// One tick of a scheduled function, with its job's sample schedule event.
pub async fn run_tick<S: WorkSource>(function: &ScheduledFunction<S>, job: &str) -> TickReport {
    function
        .handle(LambdaEvent::new(schedule_event(job), Context::default()))
        .await
        .unwrap_or_else(|error| panic!("the {job} tick failed: {error:?}"))
}

/// The sample schedule event of one job, `events/example-eventbridge-<job>.json`.
pub fn schedule_event(job: &str) -> EventBridgeEvent {
    let path = project_root().join(format!("events/example-eventbridge-{job}.json"));
    let text = std::fs::read_to_string(path).expect("cannot read the sample schedule event");
    serde_json::from_str(&text).expect("the sample schedule event does not parse")
}
