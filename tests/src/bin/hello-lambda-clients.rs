//! The cold-start baseline with the SDK: the same as `hello-lambda`, after loading the SDK
//! configuration and building the SQS and DynamoDB clients (no call), as our functions do.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| {
        let (_sqs, _dynamo) = (&sqs, &dynamo);
        async { Ok::<_, lambda_runtime::Error>(serde_json::json!({})) }
    }))
    .await
}
