#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    symphony_api::run().await
}
