//! Benchmark: enqueueing through `SqsTransport` (SendMessageBatch, ten a call, four calls
//! in flight) against the baseline of one `SendMessage` per email, one after another —
//! what a naive port of the cron route would do. Both run in the same process against the
//! same moto server, on a fresh queue each, so moto's per-send cost (it grows with queue
//! depth) is the same for both. Prints medians and the ratio.
//!
//! `cargo run --release -p symphony-tests --bin bench-transport [messages] [rounds]`

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::time::{Duration, Instant};

use symphony_aws::SqsTransport;
use symphony_core::{Envelope, Transport};
use symphony_tests::{Moto, seed};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let messages: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let envelopes: Vec<Envelope> = (0..messages)
        .map(|n| {
            let email = seed::queued_email(
                &format!("email-{n}"),
                "mailbox-1",
                &format!("lead{n}@example.com"),
            );
            Envelope::wrap(&email.message, "bench", None).expect("an email always wraps")
        })
        .collect();

    let mut baseline = Vec::new();
    let mut batched = Vec::new();
    for round in 0..rounds {
        let url = fresh_queue(&sqs, &format!("baseline-{round}")).await;
        let started = Instant::now();
        for envelope in &envelopes {
            sqs.send_message()
                .queue_url(&url)
                .message_body(envelope.to_body())
                .send()
                .await
                .expect("SendMessage failed");
        }
        baseline.push(started.elapsed());
        assert_eq!(seed::queue_depth(&sqs, &url).await, messages);

        let url = fresh_queue(&sqs, &format!("batched-{round}")).await;
        let transport = SqsTransport::connect(sqs.clone(), &url)
            .await
            .expect("queue attributes");
        let started = Instant::now();
        let deliveries = transport.send(envelopes.clone()).await;
        batched.push(started.elapsed());
        assert!(
            deliveries.iter().all(|d| d.result.is_ok()),
            "a batched send failed"
        );
        assert_eq!(seed::queue_depth(&sqs, &url).await, messages);
    }

    let (base, fast) = (median(&mut baseline), median(&mut batched));
    println!("enqueue {messages} emails into moto SQS, median of {rounds} rounds");
    println!(
        "  baseline  one SendMessage each, sequential   {:>8.1} ms",
        ms(base)
    );
    println!(
        "  symphony  SqsTransport (batch 10, 4 in flight) {:>6.1} ms",
        ms(fast)
    );
    println!(
        "  ratio     baseline / symphony = {:.1}x",
        base.as_secs_f64() / fast.as_secs_f64()
    );
}

async fn fresh_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("CreateQueue failed")
        .queue_url
        .expect("no queue URL")
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}
