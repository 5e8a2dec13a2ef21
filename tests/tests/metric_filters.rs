//! The template's metric filters against the lines the functions really log: an alarm
//! whose filter matches no real line would never fire. Each filter is evaluated on the
//! JSON lines of a run that meets its fault, written by the functions' own log set-up.

use serde_json::Value;
use symphony_tests::logs::CapturedLogs;
use symphony_tests::stack::{load_template, resources_of_type};
use symphony_tests::world::EmailJob;
use symphony_tests::world::World;

/// Whether a CloudWatch Logs JSON filter pattern of the form `{ $.a.b = "text" }` (a
/// trailing `*` in the text matches any ending) selects `line`. Any other form of pattern
/// fails the test, so a new kind of filter is taught here before it is trusted.
fn selects(pattern: &str, line: &str) -> bool {
    let inner = pattern
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a JSON filter pattern: {pattern}"))
        .trim();
    let (selector, value) = inner
        .split_once(" = ")
        .unwrap_or_else(|| panic!("only `$.path = \"text\"` is understood: {pattern}"));
    let path = selector
        .strip_prefix("$.")
        .unwrap_or_else(|| panic!("a selector starts with $.: {pattern}"));
    let wanted = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("the value must be quoted: {pattern}"));
    let Ok(json) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    let found = path
        .split('.')
        .try_fold(&json, |value, key| value.get(key))
        .and_then(Value::as_str);
    match (found, wanted.strip_suffix('*')) {
        (Some(found), Some(prefix)) => found.starts_with(prefix),
        (Some(found), None) => found == wanted,
        (None, _) => false,
    }
}

#[test]
fn the_pattern_evaluator_reads_what_cloudwatch_reads() {
    let line = r#"{"level":"ERROR","fields":{"message":"INFRASTRUCTURE FAULT: units released"}}"#;
    assert!(selects(
        r#"{ $.fields.message = "INFRASTRUCTURE FAULT*" }"#,
        line
    ));
    assert!(!selects(
        r#"{ $.fields.message = "INFRASTRUCTURE FAULT" }"#,
        line
    ));
    assert!(!selects(r#"{ $.message = "INFRASTRUCTURE FAULT*" }"#, line));
    assert!(!selects(r#"{ $.fields.message = "FLAG TABLE*" }"#, line));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_filter_matches_the_line_its_fault_logs_and_no_ordinary_one() {
    // Given every log line, in the functions' format
    let captured = CapturedLogs::install("info");

    // When a tick meets an unreadable flag table, and another a queue that is gone
    let world = World::start().await;
    world.set_email_flag(true).await;
    world.seed_emails("ordinary", 1).await;
    world
        .tick::<EmailJob>(&world.scheduled::<EmailJob>(&[]).await)
        .await;
    let mut env = world.tick_env::<EmailJob>();
    env.insert("FLAGS_TABLE".into(), "no-such-table".into());
    world.seed_emails("unflagged", 1).await;
    world
        .tick::<EmailJob>(&world.scheduled_in::<EmailJob>(&env).await)
        .await;
    world.seed_emails("stranded", 1).await;
    let function = world.scheduled::<EmailJob>(&[]).await;
    world
        .sqs
        .delete_queue()
        .queue_url(&world.stack.queue("EmailQueue").url)
        .send()
        .await
        .unwrap();
    world.tick::<EmailJob>(&function).await;

    // Then each of the template's filters selects a line the fault really logged, and
    // none of the lines of the ordinary tick
    let text = captured.text();
    let lines: Vec<&str> = text.lines().collect();
    let ordinary_end = lines
        .iter()
        .position(|line| line.contains("FLAG TABLE UNREADABLE"))
        .expect("the unreadable flag table was logged");
    let template = load_template();
    let filters = resources_of_type(&template, "AWS::Logs::MetricFilter");
    assert_eq!(
        filters.len(),
        9,
        "three flag-table and six infrastructure filters"
    );
    for (id, filter) in filters {
        let pattern = filter["FilterPattern"].as_str().expect("a filter pattern");
        assert!(
            lines.iter().any(|line| selects(pattern, line)),
            "{id} ({pattern}) selects no line the functions logged"
        );
        assert!(
            !lines[..ordinary_end]
                .iter()
                .any(|line| selects(pattern, line)),
            "{id} ({pattern}) selects an ordinary line"
        );
    }
}
