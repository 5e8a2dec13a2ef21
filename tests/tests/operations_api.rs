//! `symphony-api` through lambda_http with function-URL events, against moto and the
//! loopback SMTP server: health turns 503 on what an operator must act on, metrics add
//! up to what a run processed on each path, and bad `minutes` are a 400 that says so.

use chrono::Utc;
use serde_json::Value;
use symphony_api::SymphonyApi;
use symphony_aws::OperationsTable;
use symphony_core::Heartbeat;
use symphony_jobs::email::EMAIL_FLAG;
use symphony_tests::world::{CampaignJob, EmailJob, SmsJob, World};
use symphony_tests::{project_root, seed};

fn api(world: &World) -> SymphonyApi {
    let env = symphony_core::config::from_pairs(&[("SYMPHONY_STACK", world.stack.name.as_str())]);
    SymphonyApi::from_env(&env, &world.sdk).expect("the API starts")
}

/// A function-URL request as Lambda delivers it (the sample event, with this path,
/// query and method).
fn request(path: &str, query: &[(&str, &str)], method: &str) -> lambda_http::Request {
    let sample =
        std::fs::read_to_string(project_root().join("events/example-function-url-health.json"))
            .expect("the sample function-URL event");
    let mut event: Value = serde_json::from_str(&sample).expect("JSON");
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["rawQueryString"] = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
        .into();
    if !query.is_empty() {
        event["queryStringParameters"] = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    lambda_http::request::from_str(&event.to_string()).expect("a function-URL event")
}

async fn call(api: &SymphonyApi, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    call_with(api, path, query, "GET").await
}

async fn call_with(
    api: &SymphonyApi,
    path: &str,
    query: &[(&str, &str)],
    method: &str,
) -> (u16, Value) {
    let Ok(response) = api.handle(request(path, query, method)).await;
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "every answer is JSON"
    );
    let body = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).expect("a JSON body"),
        other => panic!("not a text body: {other:?}"),
    };
    (response.status().as_u16(), body)
}

fn check<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .expect("a list of checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {health:#}"))
}

const HEALTH: &str = "/api/symphony/health";
const METRICS: &str = "/api/symphony/metrics";

async fn tick_every_job(world: &World) {
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    world
        .tick::<CampaignJob>(&world.scheduled::<CampaignJob>(&[]).await)
        .await;
    world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_until_it_is_healthy_and_then_on_each_thing_to_act_on() {
    let world = World::start().await;
    let api = api(&world);

    // Before any tick: no schedule has run
    let (status, health) = call(&api, HEALTH, &[]).await;
    assert_eq!(status, 503, "{health:#}");
    assert_eq!(health["status"], "unhealthy");
    let email_schedule = check(&health, "schedule:process-email-queue");
    assert_eq!(email_schedule["healthy"], false);
    assert_eq!(
        email_schedule["detail"]["problem"],
        "no tick has ever been recorded"
    );

    // Every schedule ticked, nothing in a DLQ, nothing held: healthy
    tick_every_job(&world).await;
    let (status, health) = call(&api, HEALTH, &[]).await;
    assert_eq!(status, 200, "{health:#}");
    assert_eq!(health["status"], "healthy");
    assert_eq!(check(&health, "flags")["healthy"], true);
    let tick = &check(&health, "schedule:process-sms-drip")["detail"];
    assert_eq!(tick["fetchedWork"], true);
    assert!(tick["did"]["due"].is_u64(), "{tick}");

    // A message in the email DLQ
    let dead = world.stack.queue("EmailDeadLetterQueue").url.clone();
    seed::send_body(&world.sqs, &dead, "{\"id\": \"broken").await;
    let (status, health) = call(&api, HEALTH, &[]).await;
    assert_eq!(status, 503);
    let queue = check(&health, "queue:email");
    assert_eq!(queue["healthy"], false);
    assert_eq!(queue["detail"]["deadLetters"], 1);
    assert_eq!(check(&health, "queue:sms")["healthy"], true);
    world
        .sqs
        .purge_queue()
        .queue_url(&dead)
        .send()
        .await
        .unwrap();
    assert_eq!(call(&api, HEALTH, &[]).await.0, 200);

    // The SMS schedule's last tick an hour ago (every 5 minutes is the schedule)
    let operations =
        OperationsTable::new(world.dynamo.clone(), world.stack.table("OperationsTable"));
    operations
        .beat(&Heartbeat {
            function: "process-sms-drip".into(),
            job: "sms".into(),
            at: Utc::now() - chrono::Duration::hours(1),
            duration_ms: 40,
            ok: true,
            summary: Default::default(),
        })
        .await
        .unwrap();
    let (status, health) = call(&api, HEALTH, &[]).await;
    assert_eq!(status, 503);
    let sms = check(&health, "schedule:process-sms-drip");
    assert_eq!(
        sms["detail"]["problem"], "the schedule missed its runs",
        "{sms}"
    );
    world
        .tick::<SmsJob>(&world.scheduled::<SmsJob>(&[]).await)
        .await;
    assert_eq!(call(&api, HEALTH, &[]).await.0, 200);

    // An email held as an unknown outcome
    let mut held = seed::queued_email("held-1", "mailbox-1", "lead@example.com");
    held.status = symphony_jobs::email::EmailStatus::Unknown;
    seed::put_email(&world.dynamo, world.stack.table("EmailsTable"), &held).await;
    let (status, health) = call(&api, HEALTH, &[]).await;
    assert_eq!(status, 503);
    assert_eq!(check(&health, "held:email")["detail"]["unknownOutcomes"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_add_up_to_what_a_run_processed_on_each_path() {
    // Given a legacy tick (flags off) over three emails, one of them rejected for good
    let world = World::start().await;
    let api = api(&world);
    for (id, to) in [
        ("legacy-1", "lead-1@example.com"),
        ("legacy-2", "lead-2@example.com"),
        ("legacy-3", "bounce-3@example.com"),
    ] {
        world.queue_email(id, "mailbox-1", to).await;
    }
    let tick = world.scheduled::<EmailJob>(&[]).await;
    let legacy = world.tick::<EmailJob>(&tick).await;
    // and then the symphony path over four more, one rejected
    world.set_flag(EMAIL_FLAG, true).await;
    for (id, to) in [
        ("symphony-1", "lead-4@example.com"),
        ("symphony-2", "lead-5@example.com"),
        ("symphony-3", "lead-6@example.com"),
        ("symphony-4", "bounce-7@example.com"),
    ] {
        world.queue_email(id, "mailbox-1", to).await;
    }
    let symphony = world.tick::<EmailJob>(&tick).await;
    let worker = world.worker::<EmailJob>(&[]).await;
    let drained = world.drain::<EmailJob>(&worker).await;

    // When the metrics of the last five minutes are read
    let (status, metrics) = call(&api, METRICS, &[("minutes", "5")]).await;

    // Then each path counts what it did
    assert_eq!(status, 200, "{metrics:#}");
    assert_eq!(metrics["minutes"], 5);
    let email = metrics["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["job"] == "email")
        .unwrap();
    let on_legacy = &email["legacy"];
    assert_eq!(on_legacy["processed"], 3, "{on_legacy:#}");
    assert_eq!(on_legacy["succeeded"], legacy.legacy as u64);
    assert_eq!(on_legacy["failedIntrinsic"], 1);
    assert_eq!(
        on_legacy["latencyMs"]["count"], 2,
        "latency of each sent email"
    );
    assert!(on_legacy["latencyMs"]["p99"].is_u64());
    let on_symphony = &email["symphony"];
    assert_eq!(on_symphony["dispatched"], symphony.dispatched as u64);
    assert_eq!(on_symphony["dispatched"], 4);
    assert_eq!(on_symphony["processed"], 4, "{on_symphony:#}");
    assert_eq!(on_symphony["succeeded"], drained.succeeded as u64 - 1);
    assert_eq!(on_symphony["failedIntrinsic"], 1);
    assert_eq!(on_symphony["deadLettered"], 1);
    assert_eq!(on_symphony["errorRate"], 0.25);
    assert_eq!(on_symphony["handleMs"]["count"], 4);
    assert_eq!(world.delivered_ids().len(), 5);
    // and the other jobs did nothing
    let sms = metrics["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["job"] == "sms")
        .unwrap();
    assert_eq!(sms["symphony"]["processed"], 0);
    assert_eq!(sms["legacy"]["errorRate"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_gets_a_status_and_a_reason() {
    let world = World::start().await;
    let api = api(&world);
    for bad in ["0", "1441", "ten", "-3"] {
        let (status, body) = call(&api, METRICS, &[("minutes", bad)]).await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["error"].as_str().unwrap().contains("1 to 1440"),
            "{bad}: {body}"
        );
    }
    let (status, body) = call(&api, METRICS, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["minutes"], 60, "missing means 60");
    assert_eq!(call_with(&api, HEALTH, &[], "POST").await.0, 405);
    let (status, body) = call(&api, "/api/symphony/secrets", &[]).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("no such endpoint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_which_resource_cannot_be_read() {
    // A stack name with no resources: every check is unhealthy and names its cause
    let world = World::start().await;
    let env = symphony_core::config::from_pairs(&[("SYMPHONY_STACK", "nope")]);
    let api = SymphonyApi::from_env(&env, &world.sdk).unwrap();
    let (status, health) = call(&api, HEALTH, &[]).await;
    assert_eq!(status, 503);
    let flags = check(&health, "flags");
    assert!(
        flags["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("GetItem"),
        "{flags}"
    );
    // and without SYMPHONY_STACK the function does not start, naming the variable
    let error = SymphonyApi::from_env(&symphony_core::config::from_pairs(&[]), &world.sdk)
        .unwrap_err()
        .to_string();
    assert!(error.contains("SYMPHONY_STACK"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_changes_only_from_what_was_read_and_each_change_is_recorded() {
    use symphony_aws::operations::{FlagChange, FlagChangeError, FlagState};
    let world = World::start().await;
    let operations =
        OperationsTable::new(world.dynamo.clone(), world.stack.table("OperationsTable"));
    let flags = world.flags_table();
    // An item as the web app writes it: no rolloutPercent, which reads as 100 %
    world
        .dynamo
        .put_item()
        .table_name(flags)
        .item(
            "name",
            aws_sdk_dynamodb::types::AttributeValue::S(EMAIL_FLAG.into()),
        )
        .item(
            "enabled",
            aws_sdk_dynamodb::types::AttributeValue::Bool(true),
        )
        .send()
        .await
        .expect("a flag item");
    let change = |from: &str, to: &str| FlagChange {
        flag: EMAIL_FLAG.into(),
        at: Utc::now(),
        who: "ann".into(),
        from: from.into(),
        to: to.into(),
        why: "test".into(),
    };
    let on = FlagState {
        enabled: true,
        rollout_percent: 100,
    };
    let off = FlagState {
        enabled: false,
        rollout_percent: 100,
    };
    operations
        .change_flag(flags, Some(on), off, &change("on 100%", "off 100%"))
        .await
        .expect("the flag is as read: it changes");

    // A second operator who read it on, before the first turned it off, is refused
    let half = FlagState {
        enabled: true,
        rollout_percent: 50,
    };
    let stale = operations
        .change_flag(flags, Some(on), half, &change("on 100%", "on 50%"))
        .await
        .expect_err("the flag moved since it was read");
    assert!(matches!(stale, FlagChangeError::Raced { .. }), "{stale:?}");
    // and so is one who thinks it absent
    let absent = operations
        .change_flag(flags, None, on, &change("absent", "on 100%"))
        .await
        .expect_err("it exists");
    assert!(
        matches!(absent, FlagChangeError::Raced { .. }),
        "{absent:?}"
    );

    // The next tick reads it off, and the history holds the one change that happened
    let tick = world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    assert!(!tick.flags.job.enabled, "{:?}", tick.flags);
    let history = operations
        .flag_history(Some(EMAIL_FLAG))
        .await
        .expect("the history reads");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (history[0].from.as_str(), history[0].to.as_str()),
        ("on 100%", "off 100%")
    );
}
