//! `template.yaml` is the single source of truth for resources: it must lint clean with
//! the pinned cfn-lint, and the lint must be able to fail.

use std::process::Command;

use symphony_tests::project_root;
use symphony_tests::services::python_bin;
use symphony_tests::stack::{load_template, resources_of_type};

fn cfn_lint(path: &std::path::Path) -> (bool, String) {
    let output = Command::new(python_bin().join("cfn-lint"))
        .arg(path)
        .output()
        .expect("cannot run cfn-lint from the project venv");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn the_pinned_cfn_lint_is_the_one_that_checks_sam_functions() {
    let output = Command::new(python_bin().join("cfn-lint"))
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&output.stdout);
    assert!(
        version.contains("1.51.0"),
        "cfn-lint {version}: see scripts/requirements.txt"
    );
}

#[test]
fn the_template_lints_clean() {
    let (ok, report) = cfn_lint(&project_root().join("template.yaml"));
    assert!(ok, "cfn-lint found problems:\n{report}");
}

#[test]
fn a_broken_template_fails_the_lint() {
    // A bad runtime, a bad schedule, an impossible batch size and visibility timeout:
    // the four mistakes the pinned cfn-lint is known to catch in SAM resources.
    let text = std::fs::read_to_string(project_root().join("template.yaml")).unwrap();
    let broken = text
        .replace("Runtime: provided.al2023", "Runtime: provided.al2099")
        .replace("Default: rate(1 minute)", "Default: every minute")
        .replace("BatchSize: 10\n", "BatchSize: 50000\n")
        .replace("VisibilityTimeout: 180", "VisibilityTimeout: 99999");
    assert_ne!(
        broken, text,
        "the replacements no longer match template.yaml"
    );
    let dir = std::env::temp_dir().join(format!("symphony-lint-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("template.yaml");
    std::fs::write(&path, broken).unwrap();

    let (ok, report) = cfn_lint(&path);

    assert!(!ok, "cfn-lint passed a broken template:\n{report}");
    for expected in ["provided.al2099", "50000", "99999", "'cron()' or 'rate()'"] {
        assert!(
            report.contains(expected),
            "cfn-lint missed {expected}:\n{report}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_queue_is_wired_as_lambda_advises() {
    let template = load_template();
    let resources = &template["Resources"];
    let mut workers = 0;
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let metadata = &resources[id.as_str()]["Metadata"];
        assert_eq!(
            metadata["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}"
        );
        assert!(
            !function["Role"].is_null(),
            "{id} must have its own least-privilege role"
        );
        for (_, event) in function["Events"].as_mapping().unwrap() {
            if event["Type"].as_str() != Some("SQS") {
                continue;
            }
            workers += 1;
            let source = &event["Properties"];
            assert_eq!(
                source["FunctionResponseTypes"][0].as_str(),
                Some("ReportBatchItemFailures"),
                "{id}"
            );
            let serde_norway::Value::Tagged(queue) = &source["Queue"] else {
                panic!("{id}: the queue must be a !GetAtt");
            };
            let queue_id = queue.value.as_str().unwrap().trim_end_matches(".Arn");
            let queue = &resources[queue_id]["Properties"];
            let visibility = queue["VisibilityTimeout"].as_u64().unwrap();
            let timeout = function["Timeout"].as_u64().unwrap();
            assert!(
                visibility >= 6 * timeout,
                "{queue_id}: visibility {visibility}s < 6 × {id}'s timeout {timeout}s"
            );
            assert_eq!(
                queue["RedrivePolicy"]["maxReceiveCount"].as_u64(),
                Some(5),
                "{queue_id}"
            );
        }
    }
    assert!(workers >= 2, "only {workers} SQS workers found");
}

/// Where AWS offers no narrower resource, a wildcard is allowed, with the reason here:
/// (action, the resource must end with).
const REQUIRED_WILDCARDS: [(&str, &str); 2] = [
    // SMS to a phone number has no ARN: SNS can only authorise Publish on "*".
    ("sns:Publish", "*"),
    // A secret's ARN ends in a random suffix AWS adds, so a grant names a prefix; ours is
    // the stack's own SMTP folder.
    (
        "secretsmanager:GetSecretValue",
        ":secret:${AWS::StackName}/smtp/*",
    ),
];

#[test]
fn no_function_policy_uses_a_wildcard_action_or_resource() {
    let template = load_template();
    let mut checked = 0;
    for (role_id, role) in resources_of_type(&template, "AWS::IAM::Role") {
        for policy in role["Policies"].as_sequence().into_iter().flatten() {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                checked += 1;
                let actions = strings(&statement["Action"]);
                let resources = strings(&statement["Resource"]);
                for action in &actions {
                    assert!(
                        !action.contains(['*', '?']),
                        "{role_id}: wildcard action {action}"
                    );
                }
                for resource in resources.iter().filter(|r| r.contains(['*', '?'])) {
                    let allowed = actions.iter().all(|action| {
                        REQUIRED_WILDCARDS.iter().any(|(allowed, suffix)| {
                            allowed == action && resource.ends_with(suffix)
                        })
                    });
                    assert!(
                        allowed,
                        "{role_id}: wildcard resource {resource} for {actions:?}"
                    );
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} statements found");
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        assert!(
            function["Policies"].is_null(),
            "{id}: policies belong in its own role"
        );
    }
}

/// The strings of an IAM `Action` or `Resource` (a string, a list, or intrinsics: an
/// intrinsic names one resource of the stack, so it is kept as its text).
fn strings(value: &serde_norway::Value) -> Vec<String> {
    match value {
        serde_norway::Value::String(text) => vec![text.clone()],
        serde_norway::Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        serde_norway::Value::Tagged(tagged) => match tagged.value.as_str() {
            Some(text) => vec![text.to_owned()],
            None => vec![format!("{} {:?}", tagged.tag, tagged.value)],
        },
        other => panic!("unexpected IAM value {other:?}"),
    }
}

/// The logical id an intrinsic names: `!Ref X`, `!GetAtt X.Attribute`.
fn target(value: &serde_norway::Value) -> Option<&str> {
    let serde_norway::Value::Tagged(tagged) = value else {
        return None;
    };
    let text = tagged.value.as_str()?;
    Some(text.split('.').next().unwrap_or(text))
}

#[test]
fn every_queue_dead_letter_queue_and_function_has_an_alarm_that_notifies_someone() {
    let template = load_template();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    // What each alarm watches (the target of its first dimension), and on which metric
    let mut watched: Vec<(String, String)> = Vec::new();
    for (id, alarm) in &alarms {
        for actions in ["AlarmActions", "OKActions"] {
            assert_eq!(
                alarm[actions]
                    .as_sequence()
                    .and_then(|a| a.first())
                    .and_then(target),
                Some("AlarmTopic"),
                "{id}: {actions} must notify the alarm topic"
            );
        }
        if let Some(dimension) = alarm["Dimensions"].as_sequence().and_then(|d| d.first()) {
            let metric = alarm["MetricName"].as_str().unwrap_or_default().to_owned();
            watched.push((
                target(&dimension["Value"]).unwrap_or_default().to_owned(),
                metric,
            ));
        }
    }
    let watches =
        |resource: &str, metric: &str| watched.iter().any(|(r, m)| r == resource && m == metric);
    let mut queues = 0;
    for (id, queue) in resources_of_type(&template, "AWS::SQS::Queue") {
        queues += 1;
        if queue["RedrivePolicy"].is_null() {
            // A dead-letter queue: one message in it is a unit not sent.
            assert!(
                watches(&id, "ApproximateNumberOfMessagesVisible"),
                "no alarm on messages in {id}"
            );
        } else {
            assert!(
                watches(&id, "ApproximateAgeOfOldestMessage"),
                "no alarm on {id} backing up"
            );
        }
    }
    assert_eq!(queues, 6);
    for (id, _) in resources_of_type(&template, "AWS::Serverless::Function") {
        assert!(watches(&id, "Errors"), "no alarm on {id}'s errors");
    }
    assert!(
        alarms
            .iter()
            .any(|(_, a)| a["MetricName"].as_str() == Some("FlagTableUnreadable")),
        "no alarm on an unreadable flag table"
    );
}
