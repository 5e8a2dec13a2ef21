//! How much the batch processor costs over the bare minimum of handling a batch.
//!
//! Baseline: decode each of ten SQS bodies straight into the payload type with serde.
//! Measured: the same ten bodies through `BatchProcessor` (envelope decode, registry
//! look-up, payload decode, panic guard, tracing span, partial batch response).
//! Report the ratio measured / baseline from one run (docs/benchmarks.md).

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use symphony_core::{
    BatchProcessor, Envelope, HandlerContext, HandlerError, HandlerRegistry, Message, Route,
    TypedHandler,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Email {
    email_id: String,
    user_id: String,
    mailbox_id: String,
    to_email: String,
    subject: String,
    html: String,
}

impl Message for Email {
    const TYPE: &'static str = "EmailMessage";
}

struct Discard;

#[async_trait]
impl TypedHandler<Email> for Discard {
    async fn handle(
        &self,
        email: Email,
        _: &Envelope,
        _: &HandlerContext,
    ) -> Result<(), HandlerError> {
        black_box(email);
        Ok(())
    }
}

fn event() -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = (0..10)
        .map(|n| {
            let email = Email {
                email_id: format!("email-{n}"),
                user_id: "user-1".into(),
                mailbox_id: "mailbox-1".into(),
                to_email: format!("lead{n}@example.com"),
                subject: "Welcome aboard".into(),
                html: "<p>".to_owned() + &"Hello there. ".repeat(150) + "</p>",
            };
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("m-{n}"));
            record.body = Some(
                Envelope::wrap(&email, "bench", None)
                    .map(|e| e.to_body())
                    .unwrap_or_default(),
            );
            record
                .attributes
                .insert("ApproximateReceiveCount".into(), "1".into());
            record
        })
        .collect();
    event
}

#[derive(Deserialize)]
struct BareEnvelope {
    payload: Email,
}

fn batch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let event = event();
    let processor = BatchProcessor::new(
        Arc::new(
            HandlerRegistry::new()
                .register(Discard)
                .expect("one registration"),
        ),
        4,
    );
    let context = HandlerContext::new(Route::Symphony, "bench");

    let mut group = c.benchmark_group("batch_of_10");
    group.bench_function("baseline_serde_decode", |b| {
        b.iter(|| {
            for record in &event.records {
                let body = record.body.as_deref().unwrap_or_default();
                let parsed: BareEnvelope = serde_json::from_str(body).expect("valid body");
                black_box(parsed.payload);
            }
        });
    });
    group.bench_function("batch_processor", |b| {
        b.iter(|| black_box(runtime.block_on(processor.process(&event, &context))));
    });
    group.finish();

    c.bench_function("rollout_bucket", |b| {
        b.iter(|| {
            symphony_core::flags::bucket(
                black_box("SYMPHONY_EMAIL_QUEUE_ENABLED"),
                black_box("email-12345"),
            )
        });
    });
}

criterion_group!(benches, batch);
criterion_main!(benches);
