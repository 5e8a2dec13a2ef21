//! `docs/schemas/envelope.schema.json` is the contract for programs in other languages:
//! what Symphony writes must validate, and what the handler would refuse must not.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use symphony_core::Envelope;
use symphony_jobs::email::EmailMessage;
use symphony_tests::project_root;
use symphony_tests::services::python_bin;

/// Validates each document with Python's jsonschema (draft 2020-12, formats checked);
/// returns the first error of each, or None.
fn validate(documents: &[Value]) -> Vec<Option<String>> {
    const SCRIPT: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
results = []
for document in json.load(sys.stdin):
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    results.append(errors[0].message if errors else None)
print(json.dumps(results))
"#;
    let schema = project_root().join("docs/schemas/envelope.schema.json");
    let mut child = Command::new(python_bin().join("python"))
        .args(["-c", SCRIPT])
        .arg(schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run the venv's python");
    let input = serde_json::to_string(documents).expect("documents serialise");
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input.as_bytes())
        .expect("cannot write to the schema check");
    let output = child
        .wait_with_output()
        .expect("the schema check did not finish");
    assert!(output.status.success(), "the schema check itself failed");
    serde_json::from_slice(&output.stdout).expect("the schema check printed no JSON")
}

fn email() -> EmailMessage {
    EmailMessage {
        email_id: "email-1".into(),
        user_id: "user-1".into(),
        mailbox_id: "mailbox-1".into(),
        to_email: "lead@example.com".into(),
        subject: "Hello".into(),
        html: "<p>Hi</p>".into(),
        from_name: "Ada".into(),
        from_email: "ada@example.com".into(),
    }
}

#[test]
fn what_symphony_writes_and_the_samples_carry_validate() {
    let mut documents = vec![
        serde_json::to_value(Envelope::wrap(&email(), "process-email-queue", None).unwrap())
            .unwrap(),
    ];
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(project_root().join("events/example-sqs-email.json")).unwrap(),
    )
    .unwrap();
    for record in sample["Records"].as_array().unwrap() {
        documents.push(serde_json::from_str(record["body"].as_str().unwrap()).unwrap());
    }
    assert_eq!(validate(&documents), vec![None; documents.len()]);
}

#[test]
fn what_the_handler_refuses_does_not_validate() {
    let good = serde_json::to_value(Envelope::wrap(&email(), "webapp", None).unwrap()).unwrap();
    let mut missing_field = good.clone();
    missing_field["payload"]
        .as_object_mut()
        .unwrap()
        .remove("toEmail");
    let mut unknown_type = good.clone();
    unknown_type["type"] = json!("FaxMessage");
    let mut extra_field = good.clone();
    extra_field["payload"]["bcc"] = json!("someone@example.com");
    let mut bad_address = good.clone();
    bad_address["payload"]["toEmail"] = json!("not-an-address");
    let mut header_injection = good;
    header_injection["payload"]["subject"] = json!("Hi\r\nBcc: x@example.com");

    let results = validate(&[
        missing_field,
        unknown_type,
        extra_field,
        bad_address,
        header_injection,
    ]);

    let expected = ["toEmail", "FaxMessage", "bcc", "not-an-address", "Bcc"];
    for (result, word) in results.iter().zip(expected) {
        let message = result
            .as_deref()
            .unwrap_or_else(|| panic!("a document with a bad {word} validated"));
        assert!(message.contains(word), "{message}");
    }
}

#[test]
fn the_bad_campaign_and_sms_samples_do_not_validate() {
    let mut documents = Vec::new();
    for name in ["example-sqs-campaign-bad.json", "example-sqs-sms-bad.json"] {
        let sample: Value = serde_json::from_str(
            &std::fs::read_to_string(project_root().join("events").join(name)).unwrap(),
        )
        .unwrap();
        for record in sample["Records"].as_array().unwrap() {
            documents
                .push(serde_json::from_str::<Value>(record["body"].as_str().unwrap()).unwrap());
        }
    }

    let results = validate(&documents);

    // In each bad sample the first record is valid and the other two are not
    assert_eq!(results[0], None);
    assert!(
        results[1].as_deref().unwrap().contains("campaignId"),
        "{:?}",
        results[1]
    );
    assert!(
        results[2].as_deref().unwrap().contains("archive"),
        "{:?}",
        results[2]
    );
    assert_eq!(results[3], None);
    assert!(
        results[4].as_deref().unwrap().contains("555-0100"),
        "{:?}",
        results[4]
    );
    assert!(
        results[5].as_deref().unwrap().contains("first"),
        "{:?}",
        results[5]
    );
}
