//! The recipe for a fourth job (`docs/migration-guide.md`, "Adding a job"), followed to
//! the letter for a tiny one: reminders, each sent once to a provider. A record, its
//! status names and item mapping, a layout for `DynamoLedger`, a message, a handler over
//! the send-once step, and `LedgerWork` for the tick: nothing of the lifecycle is written
//! again. It runs on moto like the real jobs, through both paths.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use symphony_adapters::wiring::{TickSettings, sqs_worker};
use symphony_aws::table::{Item, n, read_n, read_optional_s, read_route, read_s, s};
use symphony_aws::{DynamoLedger, LedgerLayout, ScheduledFunction};
use symphony_core::flags::FlagDefaults;
use symphony_core::ledger::delivery::{SendOnce, Turn, guarded, take_turn};
use symphony_core::ledger::{LedgerRecord, Progress, StatusNames, UnitState, contract};
use symphony_core::{
    Envelope, EnvelopeError, HandlerContext, HandlerError, HandlerRegistry, Ledger, LedgerWork,
    Message, Next, SystemClock, TypedHandler,
};
use symphony_tests::drain::drain_queue;
use symphony_tests::stack::QueueRef;
use symphony_tests::world::{World, run_tick};

// 1. The record, and how its table names the states.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Reminder {
    reminder_id: String,
    text: String,
    state: UnitState,
    due_at: i64,
    claimed_by: Option<symphony_core::Route>,
    last_error: Option<String>,
}

const STATUS: StatusNames = StatusNames {
    ready: "pending",
    done: "reminded",
    stopped: None,
};

impl LedgerRecord for Reminder {
    const KIND: &'static str = "reminder";
    const STATUS: StatusNames = STATUS;
    const HAS_STEPS: bool = false;

    fn unit_id(&self) -> &str {
        &self.reminder_id
    }

    fn progress(&self) -> Progress {
        Progress {
            state: self.state,
            step: 0,
            due_at: self.due_at,
            claimed_by: self.claimed_by,
            last_error: self.last_error.clone(),
        }
    }

    fn set_progress(&mut self, progress: Progress) {
        self.state = progress.state;
        self.due_at = progress.due_at;
        self.claimed_by = progress.claimed_by;
        self.last_error = progress.last_error;
    }

    fn envelope(&self, source: &str) -> Result<Envelope, EnvelopeError> {
        let message = ReminderMessage {
            reminder_id: self.reminder_id.clone(),
            text: self.text.clone(),
        };
        Envelope::wrap(&message, source, Some(self.reminder_id.clone()))
    }
}

// 2. Its item mapping, and its table's layout.

fn reminder_from_item(item: &Item) -> Result<Reminder, String> {
    let status = read_s(item, "status")?;
    let state = [
        UnitState::Ready,
        UnitState::Claimed,
        UnitState::Sending,
        UnitState::Unknown,
        UnitState::Done,
        UnitState::Failed,
    ]
    .into_iter()
    .find(|state| STATUS.name(*state) == Some(status.as_str()))
    .ok_or_else(|| format!("unknown reminder status {status:?}"))?;
    Ok(Reminder {
        reminder_id: read_s(item, "reminderId")?,
        text: read_s(item, "text")?,
        state,
        due_at: read_n(item, "dueAt")?,
        claimed_by: read_route(item)?,
        last_error: read_optional_s(item, "lastError")?,
    })
}

fn reminder_to_item(reminder: &Reminder) -> Item {
    Item::from([
        ("reminderId".to_owned(), s(&reminder.reminder_id)),
        ("text".to_owned(), s(&reminder.text)),
        (
            "status".to_owned(),
            s(STATUS.name(reminder.state).unwrap_or("failed")),
        ),
        ("dueAt".to_owned(), n(reminder.due_at)),
    ])
}

const LAYOUT: LedgerLayout = LedgerLayout {
    key: "reminderId",
    due_index: "byStatusDueAt",
    due_attribute: "dueAt",
    step_attribute: None,
    done_at: "remindedAt",
};

// 3. The message and the handler: the job's own rules, then the send-once step.

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReminderMessage {
    reminder_id: String,
    text: String,
}

impl Message for ReminderMessage {
    const TYPE: &'static str = "test.reminder";
}

/// The provider: what it was asked to deliver.
#[derive(Debug, Default)]
struct Provider(Mutex<Vec<String>>);

impl Provider {
    fn delivered(&self) -> Vec<String> {
        let mut ids = self.0.lock().expect("the provider lock").clone();
        ids.sort();
        ids
    }
}

struct SendReminder {
    reminders: Arc<dyn Ledger<Reminder>>,
    provider: Arc<Provider>,
}

#[async_trait]
impl TypedHandler<ReminderMessage> for SendReminder {
    async fn handle(
        &self,
        message: ReminderMessage,
        _: &Envelope,
        context: &HandlerContext,
    ) -> Result<(), HandlerError> {
        let ledger = self.reminders.as_ref();
        let id = message.reminder_id.as_str();
        guarded(ledger, &SystemClock, id, async {
            if message.text.trim().is_empty() {
                return Err(HandlerError::permanent(
                    "invalid ReminderMessage: text is empty",
                ));
            }
            let now = Utc::now().timestamp();
            if let Turn::AlreadyDone(_) = take_turn(ledger, id, 0, context.route, now).await? {
                return Ok(());
            }
            let once = SendOnce {
                ledger,
                clock: &SystemClock,
                unit_id: id,
                step: 0,
            };
            let send = async {
                self.provider
                    .0
                    .lock()
                    .expect("the provider lock")
                    .push(id.to_owned());
                Ok(())
            };
            once.run(context, Duration::ZERO, send, |_, _| Next::Done)
                .await
        })
        .await
    }
}

const FLAG: &str = "SYMPHONY_REMINDERS_ENABLED";

async fn create_table(world: &World, name: &str) {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("valid")
    };
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("valid")
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name("byStatusDueAt")
        .key_schema(key("status", KeyType::Hash))
        .key_schema(key("dueAt", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("moto answers");
    world
        .dynamo
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("reminderId", KeyType::Hash))
        .attribute_definitions(attribute("reminderId", ScalarAttributeType::S))
        .attribute_definitions(attribute("status", ScalarAttributeType::S))
        .attribute_definitions(attribute("dueAt", ScalarAttributeType::N))
        .global_secondary_indexes(index)
        .send()
        .await
        .expect("moto answers");
}

async fn create_queue(world: &World, name: &str) -> QueueRef {
    let url = world
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("valid")
        .queue_url()
        .expect("valid")
        .to_owned();
    QueueRef {
        url,
        arn: format!("arn:aws:sqs:us-east-1:123456789012:{name}"),
    }
}

fn reminder(id: &str, due_at: i64) -> Reminder {
    Reminder {
        reminder_id: id.to_owned(),
        text: format!("Don't forget {id}"),
        state: UnitState::Ready,
        due_at,
        claimed_by: None,
        last_error: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_job_written_by_the_recipe_sends_each_unit_once_on_both_paths() {
    // Given the job's table, queue and flag, and the ledger over the table (which keeps
    // the lifecycle's contract)
    let world = World::start().await;
    for table in ["reminders", "reminders-contract"] {
        create_table(&world, table).await;
    }
    let queue = create_queue(&world, "reminders").await;
    let reminders: Arc<dyn Ledger<Reminder>> = Arc::new(DynamoLedger::new(
        world.dynamo.clone(),
        "reminders",
        LAYOUT,
        reminder_from_item,
        reminder_to_item,
    ));
    let on_its_own_table = DynamoLedger::new(
        world.dynamo.clone(),
        "reminders-contract",
        LAYOUT,
        reminder_from_item,
        reminder_to_item,
    );
    contract::check(
        &on_its_own_table,
        |id, _, due| reminder(id, due),
        "contract",
    )
    .await;
    let provider = Arc::new(Provider::default());
    let registry = || {
        let handler = SendReminder {
            reminders: reminders.clone(),
            provider: provider.clone(),
        };
        HandlerRegistry::new().register(handler).unwrap()
    };
    let settings = TickSettings {
        flags_table: world.flags_table().to_owned(),
        queue_url: queue.url.clone(),
        tick_limit: 100,
        flag_defaults: FlagDefaults::default(),
        dead_letter_queue_url: None,
        operations_table: None,
        known: Default::default(),
    };
    let work = LedgerWork::new(reminders.clone(), FLAG, Duration::from_secs(3_600));
    let tick = settings
        .tick("process-reminders", work, registry(), &world.sdk)
        .await
        .unwrap();
    let function = ScheduledFunction::new(tick, "ReminderTickFailed");
    let worker = sqs_worker(registry(), 4, None, &world.sdk).await.unwrap();
    let now = Utc::now().timestamp();
    for (id, due_at) in [("r1", now - 60), ("r2", now - 30), ("r3", now + 3_600)] {
        reminders.create(&reminder(id, due_at)).await.unwrap();
    }

    // When the flag is on, a tick runs and the worker drains the queue
    world.set_flag(FLAG, true).await;
    let report = run_tick(&function, "email-queue").await;
    let drained = drain_queue(&world.sqs, &queue, 10, |event| async {
        worker
            .handle(event)
            .await
            .unwrap_or_else(|never| match never {})
    })
    .await;

    // Then the two due reminders went through the queue, once each, and the later one waits
    assert_eq!((report.due, report.dispatched, report.legacy), (2, 2, 0));
    assert_eq!(drained.succeeded, 2);
    assert_eq!(provider.delivered(), ["r1", "r2"]);
    let later = reminders.get("r3").await.unwrap().unwrap();
    assert_eq!(later.state, UnitState::Ready);

    // And with the flag off, the next due reminder goes inline, and nothing is sent twice
    world.set_flag(FLAG, false).await;
    reminders.create(&reminder("r4", now - 10)).await.unwrap();
    let report = run_tick(&function, "email-queue").await;
    assert_eq!((report.due, report.dispatched, report.legacy), (1, 0, 1));
    let again = run_tick(&function, "email-queue").await;
    assert_eq!(again.due, 0);
    assert_eq!(provider.delivered(), ["r1", "r2", "r4"]);
    for id in ["r1", "r2", "r4"] {
        let sent = reminders.get(id).await.unwrap().unwrap();
        assert_eq!(sent.state, UnitState::Done, "{id}");
    }
}
