//! The Logs Insights queries in `docs/operations.md` run against what the functions
//! really log: each query's message is a line they write, with every field it reads.

use serde_json::Value;
use symphony_tests::logs::CapturedLogs;
use symphony_tests::world::{EmailJob, MAILBOX_ID, World};
use symphony_tests::{project_root, seed};

/// The queries of the runbook's `logs-insights` block.
fn documented_queries() -> Vec<String> {
    let runbook = std::fs::read_to_string(project_root().join("docs/operations.md"))
        .expect("docs/operations.md");
    let block = symphony_tests::fenced_block(&runbook, "logs-insights")
        .expect("a ```logs-insights block in docs/operations.md");
    block.lines().map(str::to_owned).collect()
}

/// `fields.x` / `span.x` names a query reads, and its message filter: `= "..."` or `like /.../`.
fn parse(query: &str) -> (Vec<String>, Filter) {
    let read: Vec<String> = query
        .split(|c: char| c == ',' || c == '|' || c.is_whitespace())
        .filter(|word| word.starts_with("fields.") || word.starts_with("span."))
        .filter(|word| *word != "fields.message")
        .map(str::to_owned)
        .collect();
    let filter = if let Some(rest) = query.split("filter fields.message = \"").nth(1) {
        Filter::Equals(rest.split('"').next().unwrap_or_default().to_owned())
    } else if let Some(rest) = query.split("filter fields.message like /").nth(1) {
        Filter::Contains(rest.split('/').next().unwrap_or_default().to_owned())
    } else {
        panic!("{query}: filters on no fields.message");
    };
    (read, filter)
}

#[derive(Debug)]
enum Filter {
    Equals(String),
    Contains(String),
}

fn has(line: &Value, path: &str) -> bool {
    let (top, name) = path.split_once('.').unwrap_or((path, ""));
    !line[top][name].is_null()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_query_finds_its_lines_with_the_fields_it_reads() {
    // Given the functions' real log lines at INFO
    let captured = CapturedLogs::install("info");

    // When the email job runs on both paths, with a failure on each, and once with an
    // unreadable flag item
    let world = World::start().await;
    world.set_email_flag(true).await;
    world.seed_emails("symphony", 2).await;
    let bounce = seed::queued_email("symphony-3", MAILBOX_ID, "bounce@example.com");
    seed::put_email(&world.dynamo, world.emails_table(), &bounce).await;
    let tick = world.scheduled::<EmailJob>(&[]).await;
    world.tick::<EmailJob>(&tick).await;
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;
    world.set_email_flag(false).await;
    world.seed_emails("legacy", 1).await;
    let bounce = seed::queued_email("legacy-2", MAILBOX_ID, "bounce-2@example.com");
    seed::put_email(&world.dynamo, world.emails_table(), &bounce).await;
    world.tick::<EmailJob>(&tick).await;
    world
        .dynamo
        .put_item()
        .table_name(world.flags_table())
        .item(
            "name",
            aws_sdk_dynamodb::types::AttributeValue::S(symphony_core::flags::GLOBAL_FLAG.into()),
        )
        .item(
            "enabled",
            aws_sdk_dynamodb::types::AttributeValue::S("yes".into()),
        )
        .send()
        .await
        .expect("an invalid flag item");
    world.tick::<EmailJob>(&tick).await;

    // Then each documented query matches a line carrying every field it reads
    let lines: Vec<Value> = captured
        .text()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let queries = documented_queries();
    assert!(queries.len() >= 5, "{queries:?}");
    for query in queries {
        let (read, filter) = parse(&query);
        let matching: Vec<&Value> = lines
            .iter()
            .filter(|line| {
                let message = line["fields"]["message"].as_str().unwrap_or_default();
                match &filter {
                    Filter::Equals(text) => message == text,
                    Filter::Contains(text) => message.contains(text.as_str()),
                }
            })
            .collect();
        assert!(!matching.is_empty(), "no line for {query}");
        let complete = matching
            .iter()
            .any(|line| read.iter().all(|path| has(line, path)));
        assert!(
            complete,
            "{query}: no matching line has all of {read:?}; one is {}",
            matching[0]
        );
    }
}
