//! AWS requests of a full run, counted by the moto server (`scripts/moto_server.py`,
//! `/_symphony/requests`): what `bench-calls` prints and the cost table is priced from.

use std::collections::BTreeMap;

use symphony_adapters::sms::dynamo::{enrollment_to_item, sequence_to_item};
use symphony_jobs::campaign::CAMPAIGN_FLAG;
use symphony_jobs::email::EMAIL_FLAG;
use symphony_jobs::sms::SMS_FLAG;

use crate::seed;
use crate::world::{CampaignJob, EmailJob, MAILBOX_ID, NEVER_QUIET, SmsJob, TestJob, World};
use symphony_aws::ScheduledFunction;

/// Requests per unit of one path, by request type (`DynamoDB.UpdateItem`, ...).
#[derive(Debug, Clone, Default)]
pub struct PathRequests {
    pub path: &'static str,
    pub ticks: usize,
    pub per_unit: BTreeMap<String, f64>,
}

impl PathRequests {
    /// The functions' own requests per unit (the event source's left out).
    pub fn own(&self) -> f64 {
        self.per_unit
            .iter()
            .filter(|(operation, _)| !event_source(operation))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests per unit of a service (`SQS`, `DynamoDB`), the event source's included
    /// (in AWS, Lambda's poller calls SQS on the account's bill).
    pub fn of_service(&self, service: &str) -> f64 {
        self.per_unit
            .iter()
            .filter(|(operation, _)| operation.split('.').next() == Some(service))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn of(&self, operation: &str) -> f64 {
        self.per_unit.get(operation).copied().unwrap_or(0.0)
    }
}

/// The harness's stand-in for Lambda's event source, not the functions' own calls.
pub fn event_source(operation: &str) -> bool {
    matches!(
        operation,
        "SQS.ReceiveMessage" | "SQS.DeleteMessage" | "SQS.DeleteMessageBatch"
    )
}

/// The units a run counts requests over: emails, a campaign's leads, or texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Email,
    CampaignLead,
    Text,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Email => "email",
            Unit::CampaignLead => "campaign lead",
            Unit::Text => "text",
        }
    }
}

/// Ticks until the function finds nothing due; how many ticks.
async fn tick_until_idle<J: TestJob>(world: &World, tick: &ScheduledFunction<J::Work>) -> usize {
    let mut ticks = 0;
    loop {
        ticks += 1;
        if world.tick::<J>(tick).await.due == 0 || ticks == 50 {
            return ticks;
        }
    }
}

async fn seed(world: &World, unit: Unit, path: &str, count: usize) {
    match unit {
        Unit::Email => {
            world.seed_emails(path, count).await;
        }
        Unit::CampaignLead => {
            let campaign = format!("{path}-campaign");
            seed::put_campaign(
                &world.dynamo,
                world.stack.table("CampaignsTable"),
                &seed::campaign(&campaign, MAILBOX_ID, 1),
            )
            .await;
            for n in 1..=count {
                seed::put_lead(
                    &world.dynamo,
                    world.stack.table("CampaignLeadsTable"),
                    &seed::lead(&campaign, &format!("{path}-lead-{n}")),
                )
                .await;
            }
        }
        Unit::Text => {
            let sequence = format!("{path}-sequence");
            seed::put_item(
                &world.dynamo,
                world.stack.table("SmsSequencesTable"),
                sequence_to_item(&seed::sequence(&sequence, 1)),
            )
            .await;
            for n in 1..=count {
                let enrollment =
                    seed::enrollment(&format!("{path}-{n}"), &sequence, &format!("+1555{n:07}"));
                seed::put_item(
                    &world.dynamo,
                    world.stack.table("SmsEnrollmentsTable"),
                    enrollment_to_item(&enrollment),
                )
                .await;
            }
        }
    }
}

/// A full run of `unit`'s job on one path: its ticks, its worker, and for a campaign the
/// email job's ticks and worker for the emails it made. Every function is built before
/// the counting starts (start-up is not per unit). The number of ticks.
async fn full_run(world: &World, unit: Unit) -> usize {
    match unit {
        Unit::Email => {
            let tick = world.scheduled::<EmailJob>(&[]).await;
            let worker = world.worker::<EmailJob>(&[]).await;
            world.moto.reset_request_counts();
            let ticks = tick_until_idle::<EmailJob>(world, &tick).await;
            world.drain::<EmailJob>(&worker).await;
            ticks
        }
        Unit::CampaignLead => {
            let campaign_tick = world.scheduled::<CampaignJob>(&[]).await;
            let campaign_worker = world.worker::<CampaignJob>(&[]).await;
            let email_tick = world.scheduled::<EmailJob>(&[]).await;
            let email_worker = world.worker::<EmailJob>(&[]).await;
            world.moto.reset_request_counts();
            let mut ticks = tick_until_idle::<CampaignJob>(world, &campaign_tick).await;
            world.drain::<CampaignJob>(&campaign_worker).await;
            ticks += tick_until_idle::<EmailJob>(world, &email_tick).await;
            world.drain::<EmailJob>(&email_worker).await;
            ticks
        }
        Unit::Text => {
            let tick = world.scheduled::<SmsJob>(&NEVER_QUIET).await;
            let worker = world.worker::<SmsJob>(&NEVER_QUIET).await;
            world.moto.reset_request_counts();
            let ticks = tick_until_idle::<SmsJob>(world, &tick).await;
            world.drain::<SmsJob>(&worker).await;
            ticks
        }
    }
}

/// `count` units through the legacy path (flags off), then as many through the
/// symphony path (flags on), counting each path's requests.
pub async fn requests_per_unit(world: &World, unit: Unit, count: usize) -> [PathRequests; 2] {
    let mut runs: [PathRequests; 2] = Default::default();
    for (run, (path, flag_on)) in runs.iter_mut().zip([("legacy", false), ("symphony", true)]) {
        for flag in [EMAIL_FLAG, CAMPAIGN_FLAG, SMS_FLAG] {
            world.set_flag(flag, flag_on).await;
        }
        seed(world, unit, path, count).await;
        let ticks = full_run(world, unit).await;
        *run = PathRequests {
            path,
            ticks,
            per_unit: world
                .moto
                .request_counts()
                .into_iter()
                .map(|(operation, n)| (operation, n as f64 / count as f64))
                .collect(),
        };
    }
    runs
}

/// [`requests_per_unit`] of emails, and how many mails the SMTP server received.
pub async fn requests_per_email(world: &World, emails: usize) -> ([PathRequests; 2], usize) {
    let runs = requests_per_unit(world, Unit::Email, emails).await;
    (runs, world.delivered_ids().len())
}
