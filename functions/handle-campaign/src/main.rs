use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use symphony_adapters::campaign::CampaignWorkerConfig;
use symphony_core::config::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    symphony_aws::telemetry::init();
    let config = CampaignWorkerConfig::from_env(&ProcessEnv)?;
    let sdk = symphony_aws::load_sdk_config().await;
    let function = handle_campaign::function(&config, &sdk).await?;
    run(service_fn(|event: LambdaEvent<_>| function.handle(event))).await
}
