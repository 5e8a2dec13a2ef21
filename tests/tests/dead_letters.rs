//! A worker's dead-letter routing against moto. The operator's side (`symphony dlq`) is
//! tested as a process in `tools/symphony/tests/cli.rs`.

use symphony_tests::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_policy_changed_in_place_reaches_a_warm_worker() {
    use symphony_core::FailureRoutes;

    // Given a worker's routes that read the email queue's maxReceiveCount (5) at start
    let world = World::start().await;
    let queue = &world.stack.queue("EmailQueue").url;
    let dlq = world.stack.queue("EmailDeadLetterQueue");
    let routes = symphony_aws::SqsFailureRoutes::connect(world.sqs.clone(), queue, &dlq.url)
        .await
        .unwrap()
        .with_refresh(std::time::Duration::ZERO);
    assert_eq!(routes.max_receive_count().await, Some(5));

    // When an operator lowers it to 3 without a redeploy
    let policy = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":3}}"#,
        dlq.arn
    );
    world
        .sqs
        .set_queue_attributes()
        .queue_url(queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            policy,
        )
        .send()
        .await
        .unwrap();

    // Then the routes follow it (the batch then takes the third attempt as the last)
    assert_eq!(routes.max_receive_count().await, Some(3));
}
