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
        .replace("BatchSize: !Ref EmailBatchSize", "BatchSize: 50000")
        .replace("VisibilityTimeout: 540", "VisibilityTimeout: 99999");
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
    let mut wirings = Vec::new();
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
        for (_, event) in function["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() != Some("SQS") {
                continue;
            }
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
            wirings.push((queue_id.to_owned(), id.clone()));
            let queue = &resources[queue_id]["Properties"];
            let visibility = queue["VisibilityTimeout"].as_u64().unwrap();
            let timeout = function["Timeout"].as_u64().unwrap();
            assert!(
                visibility >= 6 * timeout,
                "{queue_id}: visibility {visibility}s < 6 × {id}'s timeout {timeout}s"
            );
            // The count the queue redrives at is the one its worker is given.
            let variables = &function["Environment"]["Variables"];
            assert_eq!(
                target(&queue["RedrivePolicy"]["maxReceiveCount"]),
                Some("MaxReceiveCount"),
                "{queue_id}"
            );
            assert_eq!(
                target(&variables["MAX_RECEIVE_COUNT"]),
                Some("MaxReceiveCount"),
                "{id}"
            );
            assert_eq!(
                template["Parameters"]["MaxReceiveCount"]["Default"].as_u64(),
                Some(5)
            );
        }
    }
    // Each job's queue feeds its own worker, and nothing else is wired
    wirings.sort();
    assert_eq!(
        wirings,
        [
            (
                "CampaignQueue".to_owned(),
                "HandleCampaignFunction".to_owned()
            ),
            ("EmailQueue".to_owned(), "HandleEmailFunction".to_owned()),
            ("SmsQueue".to_owned(), "HandleSmsFunction".to_owned()),
        ]
    );
}

#[test]
fn every_function_may_send_to_each_queue_it_is_given_and_does_not_consume() {
    // A function is given a queue's URL to send to it (a tick dispatching, a legacy run or
    // a campaign creating emails that follow the email flag, a dead letter), or to consume
    // it; a grant missing from its role is an AccessDenied that moto never shows.
    let template = load_template();
    let resources = &template["Resources"];
    let mut checked = 0;
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let consumed: Vec<&str> = function["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter(|(_, event)| event["Type"].as_str() == Some("SQS"))
            .filter_map(|(_, event)| target(&event["Properties"]["Queue"]))
            .collect();
        let role_id = target(&function["Role"]).expect("a role of its own");
        let sends_to: Vec<String> = statements(&resources[role_id]["Properties"])
            .into_iter()
            .filter(|statement| {
                statement["Effect"].as_str() == Some("Allow")
                    && strings(&statement["Action"]).contains(&"sqs:SendMessage".to_owned())
            })
            .flat_map(|statement| strings(&statement["Resource"]))
            .collect();
        for (name, value) in function["Environment"]["Variables"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if !name.ends_with("QUEUE_URL") {
                continue;
            }
            let queue = target(value).unwrap_or_else(|| panic!("{id}: {name} must be a !Ref"));
            if consumed.contains(&queue) {
                continue;
            }
            checked += 1;
            assert!(
                sends_to.contains(&format!("{queue}.Arn")),
                "{id} is given {name} ({queue}) but its role may not send to it: {sends_to:?}"
            );
        }
    }
    // Every queue URL the functions are given but do not consume: a new one is reviewed here
    assert_eq!(checked, 10, "queue URLs checked");
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
        for statement in statements(role) {
            checked += 1;
            // A Deny only narrows what the role may do: a wildcard there is safe.
            if statement["Effect"].as_str() == Some("Deny") {
                continue;
            }
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
                    REQUIRED_WILDCARDS
                        .iter()
                        .any(|(allowed, suffix)| allowed == action && resource.ends_with(suffix))
                });
                assert!(
                    allowed,
                    "{role_id}: wildcard resource {resource} for {actions:?}"
                );
            }
        }
    }
    // Every statement of every role: a new grant is reviewed here
    assert_eq!(checked, 59, "statements checked");
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        assert!(
            function["Policies"].is_null(),
            "{id}: policies belong in its own role"
        );
    }
}

/// Every statement of every inline policy of a role (its properties).
fn statements(role: &serde_norway::Value) -> Vec<&serde_norway::Value> {
    role["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|policy| {
            policy["PolicyDocument"]["Statement"]
                .as_sequence()
                .into_iter()
                .flatten()
        })
        .collect()
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
    // What each metric-math alarm reads: (metric, job, path)
    let mut reads: Vec<(String, String, String)> = Vec::new();
    for (_, alarm) in &alarms {
        for query in alarm["Metrics"].as_sequence().into_iter().flatten() {
            let metric = &query["MetricStat"]["Metric"];
            let dimension = |name: &str| {
                metric["Dimensions"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .find(|d| d["Name"].as_str() == Some(name))
                    .and_then(|d| d["Value"].as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            if let Some(name) = metric["MetricName"].as_str() {
                reads.push((name.to_owned(), dimension("Job"), dimension("Path")));
            }
        }
    }
    let read = |metric: &str, job: &str, path: &str| {
        reads
            .iter()
            .any(|(m, j, p)| m == metric && j == job && p == path)
    };
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let scheduled = function["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .any(|(_, event)| event["Type"].as_str() == Some("Schedule"));
        let worker = function["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .any(|(_, event)| event["Type"].as_str() == Some("SQS"));
        if worker {
            // A record's failure never fails a worker: its units' error rate alarms, and
            // Errors still catches a worker that cannot start, crashes or times out.
            assert!(watches(&id, "Errors"), "no alarm on {id}'s errors");
            // The job is the worker's binary without `handle-` (Metadata sits beside
            // Properties).
            let job = template["Resources"][id.as_str()]["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("handle-")
                .to_owned();
            for path in ["symphony", "legacy"] {
                assert!(
                    read("Succeeded", &job, path) && read("FailedIntrinsic", &job, path),
                    "no error-rate alarm on {job}'s {path} path"
                );
            }
        } else {
            assert!(watches(&id, "Errors"), "no alarm on {id}'s errors");
        }
        if scheduled {
            assert!(
                watches(&id, "Invocations"),
                "no alarm on {id} missing its runs"
            );
        }
    }
    for job in ["email", "sms"] {
        assert!(
            read("FailedUnknown", job, "symphony") && read("FailedUnknown", job, "legacy"),
            "no alarm on {job} units held as unknown outcomes"
        );
    }
    assert!(
        alarms
            .iter()
            .any(|(_, a)| a["MetricName"].as_str() == Some("FlagTableUnreadable")),
        "no alarm on an unreadable flag table"
    );
}

/// A function's `Timeout` and one of its environment variables (seconds), or `default`.
fn timeout_and_variable(function_id: &str, variable: &str, default: u64) -> (u64, u64) {
    let template = load_template();
    let function = &template["Resources"][function_id]["Properties"];
    let value = function["Environment"]["Variables"][variable]
        .as_str()
        .map_or(default, |text| text.parse().expect("a number of seconds"));
    (timeout_of(function_id), value)
}

fn timeout_of(function_id: &str) -> u64 {
    load_template()["Resources"][function_id]["Properties"]["Timeout"]
        .as_u64()
        .expect("every function sets its Timeout")
}

#[test]
fn every_send_fits_in_the_timeout_of_the_function_that_makes_it() {
    use std::time::Duration;
    use symphony_adapters::email::smtp::{least_time, longest_time};

    // The worker can wait for a verdict as long as its configuration says
    let (timeout, step) = timeout_and_variable("HandleEmailFunction", "SMTP_TIMEOUT_SECONDS", 10);
    let (_, reply) = timeout_and_variable("HandleEmailFunction", "SMTP_REPLY_TIMEOUT_SECONDS", 600);
    let longest = longest_time(Duration::from_secs(step), Duration::from_secs(reply));
    assert!(
        longest <= Duration::from_secs(timeout),
        "handle-email: a send can take {longest:?}, over its {timeout}s timeout"
    );
    // The ticks that send inline can start at least one send
    let (timeout, step) =
        timeout_and_variable("ProcessEmailQueueFunction", "SMTP_TIMEOUT_SECONDS", 10);
    let least = least_time(Duration::from_secs(step));
    assert!(
        least + symphony_core::transport::LEGACY_START_MARGIN <= Duration::from_secs(timeout),
        "process-email-queue: a send needs {least:?}, its timeout is {timeout}s"
    );
    for function_id in ["HandleSmsFunction", "ProcessSmsDripFunction"] {
        let timeout = timeout_of(function_id);
        assert!(
            symphony_adapters::sms::sns::SEND_TIME < Duration::from_secs(timeout),
            "{function_id}: a send needs {:?}, its timeout is {timeout}s",
            symphony_adapters::sms::sns::SEND_TIME
        );
    }
}

#[test]
fn the_sms_roles_may_publish_to_phone_numbers_but_never_to_a_topic() {
    let template = load_template();
    let mut roles = 0;
    for (role_id, role) in resources_of_type(&template, "AWS::IAM::Role") {
        let statements = statements(role);
        let publishes = |effect: &str| {
            statements.iter().any(|statement| {
                statement["Effect"].as_str() == Some(effect)
                    && strings(&statement["Action"]).contains(&"sns:Publish".to_owned())
            })
        };
        if !publishes("Allow") {
            continue;
        }
        roles += 1;
        let denied_topics = statements.iter().any(|statement| {
            statement["Effect"].as_str() == Some("Deny")
                && strings(&statement["Resource"])
                    .iter()
                    .any(|resource| resource.contains(":sns:*:*:*"))
        });
        assert!(denied_topics, "{role_id} may publish to SNS topics");
    }
    assert_eq!(
        roles, 2,
        "the two SMS senders: process-sms-drip and handle-sms"
    );
}

#[test]
fn cloudwatch_can_publish_to_the_encrypted_alarm_topic() {
    let template = load_template();
    let resources = &template["Resources"];
    let topic = &resources["AlarmTopic"]["Properties"];
    // The AWS-managed key (alias/aws/sns) would refuse CloudWatch: ours must be named
    let key_id = target(&topic["KmsMasterKeyId"]).expect("the alarm topic uses a key of the stack");
    let key = &resources[key_id];
    assert_eq!(key["Type"].as_str(), Some("AWS::KMS::Key"));
    let statements = key["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .expect("the key has a policy");
    let cloudwatch = statements
        .iter()
        .find(|statement| {
            statement["Principal"]["Service"].as_str() == Some("cloudwatch.amazonaws.com")
        })
        .expect("the key policy lets CloudWatch use it");
    let actions = strings(&cloudwatch["Action"]);
    for needed in ["kms:Decrypt", "kms:GenerateDataKey*"] {
        assert!(actions.contains(&needed.to_owned()), "{actions:?}");
    }
}

#[test]
fn no_function_may_read_a_password_from_its_environment() {
    let template = load_template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 7);
    for (id, function) in functions {
        let variables = &function["Environment"]["Variables"];
        assert!(
            variables[symphony_jobs::secrets::LOCAL_SECRETS_SETTING].is_null(),
            "{id} allows env: password references"
        );
    }
}

#[test]
fn every_tuning_parameter_reaches_what_it_tunes() {
    let template = load_template();
    let resources = &template["Resources"];
    let refers_to = |value: &serde_norway::Value, parameter: &str| target(value) == Some(parameter);
    for (job, worker, queue_event) in [
        ("Email", "HandleEmailFunction", "EmailQueue"),
        ("Campaign", "HandleCampaignFunction", "CampaignQueue"),
        ("Sms", "HandleSmsFunction", "SmsQueue"),
    ] {
        let function = &resources[worker]["Properties"];
        let source = &function["Events"][queue_event]["Properties"];
        for (value, parameter) in [
            (&source["BatchSize"], format!("{job}BatchSize")),
            (
                &source["MaximumBatchingWindowInSeconds"],
                format!("{job}BatchingWindowSeconds"),
            ),
            (
                &source["ScalingConfig"]["MaximumConcurrency"],
                format!("{job}MaximumConcurrency"),
            ),
            (
                &function["Environment"]["Variables"]["BATCH_CONCURRENCY"],
                format!("{job}BatchConcurrency"),
            ),
        ] {
            assert!(
                !template["Parameters"][parameter.as_str()].is_null(),
                "no parameter {parameter}"
            );
            assert!(
                refers_to(value, &parameter),
                "{worker}: {parameter} is not wired"
            );
        }
    }
    for (tick, limit_variable, limit, schedule) in [
        (
            "ProcessEmailQueueFunction",
            "EMAIL_TICK_LIMIT",
            "EmailTickLimit",
            "EmailSchedule",
        ),
        (
            "ProcessCampaignsFunction",
            "CAMPAIGN_TICK_LIMIT",
            "CampaignTickLimit",
            "CampaignSchedule",
        ),
        (
            "ProcessSmsDripFunction",
            "SMS_TICK_LIMIT",
            "SmsTickLimit",
            "SmsSchedule",
        ),
    ] {
        let function = &resources[tick]["Properties"];
        assert!(
            refers_to(&function["Environment"]["Variables"][limit_variable], limit),
            "{tick}: {limit} is not wired"
        );
        assert!(
            refers_to(
                &function["Events"]["Tick"]["Properties"]["Schedule"],
                schedule
            ),
            "{tick}: {schedule} is not wired"
        );
        // The health endpoint judges a missed run by the same schedule.
        let api = &resources["SymphonyApiFunction"]["Properties"]["Environment"]["Variables"];
        let variable = format!(
            "{}_SCHEDULE",
            limit_variable.trim_end_matches("_TICK_LIMIT")
        );
        assert!(
            refers_to(&api[variable.as_str()], schedule),
            "symphony-api does not read {schedule}"
        );
    }
}

#[test]
fn the_operator_endpoints_need_aws_credentials() {
    let template = load_template();
    let api = &template["Resources"]["SymphonyApiFunction"]["Properties"];
    assert_eq!(
        api["FunctionUrlConfig"]["AuthType"].as_str(),
        Some("AWS_IAM")
    );
    // and the only function URL is that one
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        if id != "SymphonyApiFunction" {
            assert!(function["FunctionUrlConfig"].is_null(), "{id} has a URL");
        }
    }
    // Its role may only read
    let role = &template["Resources"]["SymphonyApiRole"]["Properties"];
    for statement in statements(role) {
        for action in strings(&statement["Action"]) {
            let reads = [
                "dynamodb:GetItem",
                "dynamodb:Query",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ];
            assert!(
                reads.contains(&action.as_str()),
                "symphony-api may {action}"
            );
        }
    }
}

#[test]
fn every_queue_size_a_function_is_given_is_the_queues_own() {
    // A function told the queues' MaximumMessageSize asks SQS for nothing at start: the
    // value must be the one the queues are created with.
    let template = load_template();
    for (id, queue) in resources_of_type(&template, "AWS::SQS::Queue") {
        assert_eq!(
            target(&queue["MaximumMessageSize"]),
            Some("QueueMaximumMessageBytes"),
            "{id}"
        );
    }
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        if id == "SymphonyApiFunction" {
            continue;
        }
        assert_eq!(
            target(&function["Environment"]["Variables"]["QUEUE_MAX_MESSAGE_BYTES"]),
            Some("QueueMaximumMessageBytes"),
            "{id}"
        );
    }
}
