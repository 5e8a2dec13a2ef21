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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_reaches_a_mailbox_whose_transport_was_already_built() {
    use std::sync::Arc;

    use symphony_jobs::email::ports::{Mailer, OutgoingEmail};
    use symphony_jobs::email::smtp::SmtpMailer;
    use symphony_jobs::email::{Mailbox, SmtpSecurity};

    // Given a server that wants the new password, and a mailer still holding the old one
    // in a secret it reads afresh every time (no cache age)
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    client
        .create_secret()
        .name("app/smtp/mailbox")
        .secret_string("old-Pa55")
        .send()
        .await
        .unwrap();
    let (server, ca) = symphony_tests::SmtpServer::start_requiring_login("symphony:new-Pa55");
    let mailer = SmtpMailer::new(
        Arc::new(Secrets::with_max_age(client.clone(), Duration::ZERO)),
        Duration::from_secs(5),
    )
    .with_extra_roots(std::fs::read(ca).unwrap());
    let mailbox = Mailbox {
        mailbox_id: "mailbox".into(),
        user_id: "user-1".into(),
        smtp_host: "127.0.0.1".into(),
        smtp_port: server.port,
        smtp_security: SmtpSecurity::StartTls,
        smtp_username: Some("symphony".into()),
        smtp_password: Some("secretsmanager:app/smtp/mailbox".parse().unwrap()),
        daily_limit: None,
    };
    let email = |id: &str| OutgoingEmail {
        email_id: id.into(),
        from_name: String::new(),
        from_email: "ada@acme.example".into(),
        to_email: "lead@example.com".into(),
        subject: "Hello".into(),
        html: "<p>Hi</p>".into(),
    };
    let refused = mailer.send(&mailbox, &email("before")).await;
    assert!(refused.is_err(), "the old password logged in");

    // When the password is rotated
    client
        .put_secret_value()
        .secret_id("app/smtp/mailbox")
        .secret_string("new-Pa55")
        .send()
        .await
        .unwrap();

    // Then the next send logs in with it
    mailer
        .send(&mailbox, &email("after"))
        .await
        .expect("the rotated password was not used");
    assert_eq!(server.delivered_ids(), ["after"]);
}
