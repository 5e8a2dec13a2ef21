//! Secrets Manager through moto: a secret is read once and served from the cache until it
//! is older than the cache's limit, then read again, so a rotation reaches warm containers.

use std::time::Duration;

use symphony_adapters::secrets_manager::Secrets;
use symphony_jobs::secrets::{SecretRef, SecretResolver};
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

mod rotation {
    use std::sync::Arc;
    use std::time::Duration;

    use symphony_adapters::email::smtp::SmtpMailer;
    use symphony_adapters::secrets_manager::Secrets;
    use symphony_jobs::email::ports::{Mailer, OutgoingEmail};
    use symphony_jobs::email::{Mailbox, SmtpSecurity};
    use symphony_tests::{Moto, SmtpServer};

    /// A server that wants `symphony:new-Pa55`, a secret in moto still holding the old
    /// password, and a mailbox pointing at both.
    struct Rotation {
        _moto: Moto,
        client: aws_sdk_secretsmanager::Client,
        server: SmtpServer,
        ca: Vec<u8>,
        mailbox: Mailbox,
    }

    impl Rotation {
        async fn start() -> Self {
            let moto = Moto::start();
            let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
            client
                .create_secret()
                .name("app/smtp/mailbox")
                .secret_string("old-Pa55")
                .send()
                .await
                .expect("cannot create the secret");
            let (server, ca) = SmtpServer::start_requiring_login("symphony:new-Pa55");
            let mailbox = Mailbox {
                mailbox_id: "mailbox".into(),
                user_id: "user-1".into(),
                smtp_host: "127.0.0.1".into(),
                smtp_port: server.port,
                smtp_security: SmtpSecurity::StartTls,
                smtp_username: Some("symphony".into()),
                smtp_password: Some(
                    "secretsmanager:app/smtp/mailbox"
                        .parse()
                        .expect("a valid reference"),
                ),
                daily_limit: None,
                from_name: None,
                from_email: None,
            };
            Self {
                _moto: moto,
                client,
                server,
                ca: std::fs::read(ca).expect("cannot read the CA"),
                mailbox,
            }
        }

        fn mailer(&self, secrets: Secrets) -> SmtpMailer {
            SmtpMailer::new(Arc::new(secrets), Duration::from_secs(5))
                .with_extra_roots(self.ca.clone())
        }

        async fn rotate(&self) {
            self.client
                .put_secret_value()
                .secret_id("app/smtp/mailbox")
                .secret_string("new-Pa55")
                .send()
                .await
                .expect("cannot rotate the secret");
        }
    }

    fn email(id: &str) -> OutgoingEmail {
        OutgoingEmail {
            email_id: id.into(),
            from_name: String::new(),
            from_email: "ada@acme.example".into(),
            to_email: "lead@example.com".into(),
            subject: "Hello".into(),
            html: "<p>Hi</p>".into(),
            sender_is_mailboxs: false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotated_password_reaches_a_mailbox_whose_connection_was_already_made() {
        // Given a mailer that tried the old password once, with a cache that expires at once
        let rotation = Rotation::start().await;
        let mailer = rotation.mailer(Secrets::with_max_age(
            rotation.client.clone(),
            Duration::ZERO,
        ));
        let refused = mailer.send(&rotation.mailbox, &email("before"), None).await;
        assert!(refused.is_err(), "the old password logged in");

        // When the password is rotated
        rotation.rotate().await;

        // Then the next send logs in with it
        mailer
            .send(&rotation.mailbox, &email("after"), None)
            .await
            .expect("the rotated password was not used");
        assert_eq!(rotation.server.delivered_ids(), ["after"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_login_reads_a_cached_password_afresh_before_failing() {
        // Given a mailer whose cache keeps secrets for an hour, holding the old password
        let rotation = Rotation::start().await;
        let mailer = rotation.mailer(Secrets::new(rotation.client.clone()));
        let refused = mailer
            .send(&rotation.mailbox, &email("before"), None)
            .await
            .expect_err("the old password logged in");
        assert!(refused.reason.contains("535"), "{refused:?}");

        // When the password is rotated, well within the cache's hour
        rotation.rotate().await;

        // Then the 535 on the cached password has it read again, and the mail goes out
        mailer
            .send(&rotation.mailbox, &email("after"), None)
            .await
            .expect("the refused login did not read the rotated password");
        assert_eq!(rotation.server.delivered_ids(), ["after"]);
    }
}
