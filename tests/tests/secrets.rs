//! Secrets Manager through moto: a secret is read once and served from the cache until it
//! is older than the cache's limit, then read again, so a rotation reaches warm containers.

use std::time::Duration;

use symphony_jobs::secrets::{SecretRef, SecretResolver, Secrets};
use symphony_tests::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_secret_is_read_again_once_it_is_older_than_the_limit() {
    // Given a secret, read once by a resolver that trusts its cache for 5 s
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    client
        .create_secret()
        .name("app/smtp/rotating")
        .secret_string("first-Pa55")
        .send()
        .await
        .unwrap();
    let secrets = Secrets::with_max_age(client.clone(), Duration::from_secs(5));
    let reference: SecretRef = "secretsmanager:app/smtp/rotating".parse().unwrap();
    assert_eq!(
        secrets.resolve(&reference).await.unwrap().expose(),
        "first-Pa55"
    );

    // When the secret is rotated
    client
        .put_secret_value()
        .secret_id("app/smtp/rotating")
        .secret_string("second-Pa55")
        .send()
        .await
        .unwrap();

    // Then the cache still serves the old value within the limit, and the new one after
    assert_eq!(
        secrets.resolve(&reference).await.unwrap().expose(),
        "first-Pa55"
    );
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    assert_eq!(
        secrets.resolve(&reference).await.unwrap().expose(),
        "second-Pa55"
    );
}
