//! A function starts without asking AWS for anything `template.yaml` states: with the
//! template's environment and every AWS endpoint refusing connections, all six functions
//! are built; without the stated queue limits, they cannot be (so the test can fail).

use symphony_tests::services::RefusingPort;
use symphony_tests::world::{CampaignJob, EmailJob, SmsJob, TestJob, World};

/// An SDK configuration whose every call is refused at once.
async fn unreachable_aws(port: u16) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

async fn starts<J: TestJob>(
    world: &World,
    sdk: &aws_config::SdkConfig,
    without: &[&str],
) -> (bool, bool) {
    let mut tick_env = world.function_env(J::TICK_FUNCTION, &[]);
    let mut worker_env = world.function_env(J::WORKER_FUNCTION, &[]);
    for name in without {
        tick_env.remove(*name);
        worker_env.remove(*name);
    }
    let tick = J::tick_config(&tick_env).expect("a valid configuration");
    let worker = J::worker_config(&worker_env).expect("a valid configuration");
    let tick_started = symphony_adapters::job::scheduled_function::<J>(&tick, sdk)
        .await
        .is_ok();
    let worker_started = J::worker(&worker, sdk).await.is_ok();
    (tick_started, worker_started)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_starts_with_aws_out_of_reach() {
    let world = World::start().await;
    let refusing = RefusingPort::bind();
    let sdk = unreachable_aws(refusing.port).await;

    assert_eq!(
        starts::<EmailJob>(&world, &sdk, &[]).await,
        (true, true),
        "email"
    );
    assert_eq!(
        starts::<CampaignJob>(&world, &sdk, &[]).await,
        (true, true),
        "campaign"
    );
    assert_eq!(
        starts::<SmsJob>(&world, &sdk, &[]).await,
        (true, true),
        "sms"
    );

    // Without the limits the template states, each would have to ask SQS, and cannot
    let unstated = ["QUEUE_MAX_MESSAGE_BYTES", "MAX_RECEIVE_COUNT"];
    assert_eq!(
        starts::<EmailJob>(&world, &sdk, &unstated).await,
        (false, false),
        "email without the stated limits"
    );
}
