#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    symphony_adapters::job::run_worker::<symphony_adapters::job::SmsJob>().await
}
