//! `docs/schemas/envelope.schema.json` is the contract for programs in other languages:
//! what Symphony writes must validate, and what the handler would refuse must not.

use std::io::Write;
use std::process::{Command, Stdio};
use symphony_tests::world::EmailJob;

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
        from_name: Some("Ada".into()),
        from_email: Some("ada@example.com".into()),
    }
}

#[test]
fn what_symphony_writes_and_the_samples_carry_validate() {
    // The migration guide's six-field message: the sender comes from the mailbox.
    let guide_email = EmailMessage {
        from_name: None,
        from_email: None,
        ..email()
    };
    let mut documents = vec![
        serde_json::to_value(Envelope::wrap(&email(), "process-email-queue", None).unwrap())
            .unwrap(),
        serde_json::to_value(Envelope::wrap(&guide_email, "webapp", None).unwrap()).unwrap(),
    ];
    assert!(
        documents[1]["payload"].get("fromEmail").is_none(),
        "an absent sender is left out, not written as null"
    );
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(project_root().join("events/example-sqs-email.json")).unwrap(),
    )
    .unwrap();
    for record in sample["Records"].as_array().unwrap() {
        documents.push(serde_json::from_str(record["body"].as_str().unwrap()).unwrap());
    }
    assert_eq!(validate(&documents), vec![None; documents.len()]);
}

/// Envelopes of an email the handler must refuse, each with its own id, and the word
/// the schema's complaint names: a missing field, an unknown type, an extra field, a bad
/// address, a header injection.
fn refused_documents() -> Vec<(Value, &'static str)> {
    let good = serde_json::to_value(Envelope::wrap(&email(), "webapp", None).expect("an envelope"))
        .expect("an envelope is JSON");
    let mut missing_field = good.clone();
    missing_field["payload"]
        .as_object_mut()
        .expect("a payload object")
        .remove("toEmail");
    let mut unknown_type = good.clone();
    unknown_type["type"] = json!("FaxMessage");
    let mut extra_field = good.clone();
    extra_field["payload"]["bcc"] = json!("someone@example.com");
    let mut bad_address = good.clone();
    bad_address["payload"]["toEmail"] = json!("not-an-address");
    let mut header_injection = good;
    header_injection["payload"]["subject"] = json!("Hi\r\nBcc: x@example.com");
    let mut documents = vec![
        (missing_field, "toEmail"),
        (unknown_type, "FaxMessage"),
        (extra_field, "bcc"),
        (bad_address, "not-an-address"),
        (header_injection, "Bcc"),
    ];
    for (n, (document, _)) in documents.iter_mut().enumerate() {
        document["id"] = json!(format!("refused-{n}"));
    }
    documents
}

#[test]
fn what_the_handler_refuses_does_not_validate() {
    let documents = refused_documents();
    let values: Vec<Value> = documents.iter().map(|(d, _)| d.clone()).collect();
    let results = validate(&values);
    for (result, (_, word)) in results.iter().zip(&documents) {
        let message = result
            .as_deref()
            .unwrap_or_else(|| panic!("a document with a bad {word} validated"));
        assert!(message.contains(word), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_schema_refuses_the_handler_refuses_too() {
    // Given the email the documents name, queued, and each document on the email queue
    let world = symphony_tests::world::World::start().await;
    world
        .queue_email("email-1", "mailbox-1", "lead@example.com")
        .await;
    let queue = world.stack.queue("EmailQueue").url.clone();
    let documents = refused_documents();
    for (document, _) in &documents {
        symphony_tests::seed::send_body(&world.sqs, &queue, document.to_string()).await;
    }

    // When handle-email drains the queue
    world
        .drain::<EmailJob>(&world.worker::<EmailJob>(&[]).await)
        .await;

    // Then nothing was sent, and each document is dead-lettered at once with a reason
    // naming what is wrong with it
    assert!(world.delivered_ids().is_empty());
    let letters = symphony_tests::seed::all_dead_letters(
        &world.sqs,
        &world.stack.queue("EmailDeadLetterQueue").url,
    )
    .await;
    assert_eq!(letters.len(), documents.len(), "{letters:#?}");
    for (n, (_, word)) in documents.iter().enumerate() {
        let id = format!("refused-{n}");
        let letter = letters
            .iter()
            .find(|letter| letter.body.contains(&format!("\"{id}\"")))
            .unwrap_or_else(|| panic!("{id} ({word}) is not dead-lettered: {letters:#?}"));
        assert_eq!(letter.kind, "permanent", "{id}: {letter:?}");
        assert!(
            letter.reason.contains(HANDLER_WORDS[n]),
            "{id}: {}",
            letter.reason
        );
    }
}

/// What the handler's reason names for each refused document: the field, the type, the
/// extra field (an address and a subject are named by their fields, never quoted).
const HANDLER_WORDS: [&str; 5] = [
    "toEmail",
    "FaxMessage",
    "unknown field `bcc`",
    "toEmail",
    "subject",
];

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

#[test]
fn the_schema_lists_every_dead_letter_kind_the_code_writes() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(project_root().join("docs/schemas/envelope.schema.json"))
            .expect("the schema is readable"),
    )
    .expect("the schema is JSON");
    let listed = &schema["$defs"]["ErrorDetails"]["properties"]["kind"]["enum"];
    let known: Vec<&str> = symphony_core::DeadLetterKind::KNOWN
        .iter()
        .map(|kind| kind.as_str())
        .collect();
    assert_eq!(listed, &json!(known));
}
