#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    symphony_adapters::job::run_scheduled::<symphony_adapters::job::SmsJob>().await
}
