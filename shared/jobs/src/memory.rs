//! In-memory adapters of the jobs' ports, beside the DynamoDB, SMTP and SNS ones: with
//! [`symphony_core::MemoryLedger`] they run a job's handler in milliseconds. The senders
//! answer from a script and keep what they were asked to send.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use symphony_core::StoreError;

use crate::email::Mailbox;
use crate::email::ports::{MailError, MailboxStore, Mailer, OutgoingEmail};
use crate::sms::Sequence;
use crate::sms::ports::{OptOuts, SequenceStore, SmsError, SmsSender};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every change is one push or insert: a panic elsewhere cannot leave it half-made.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn refused(table: &str) -> StoreError {
    StoreError::Unavailable {
        operation: "memory table",
        table: table.to_owned(),
        retryable: false,
        source: "access denied".into(),
    }
}

/// Records by id, or a table that refuses every read.
#[derive(Debug)]
pub struct MemoryTable<T> {
    name: &'static str,
    rows: Mutex<HashMap<String, T>>,
    refusing: Mutex<bool>,
}

impl<T: Clone> MemoryTable<T> {
    pub fn new(name: &'static str, rows: impl IntoIterator<Item = (String, T)>) -> Self {
        Self {
            name,
            rows: Mutex::new(rows.into_iter().collect()),
            refusing: Mutex::new(false),
        }
    }

    /// From now on every read fails as a table that denies access does.
    pub fn refuse(&self) {
        *lock(&self.refusing) = true;
    }

    fn read(&self, id: &str) -> Result<Option<T>, StoreError> {
        if *lock(&self.refusing) {
            return Err(refused(self.name));
        }
        Ok(lock(&self.rows).get(id).cloned())
    }
}

/// The mailboxes table in memory.
pub type MemoryMailboxes = MemoryTable<Mailbox>;

impl MemoryMailboxes {
    pub fn of(mailboxes: impl IntoIterator<Item = Mailbox>) -> Self {
        Self::new(
            "mailboxes",
            mailboxes
                .into_iter()
                .map(|mailbox| (mailbox.mailbox_id.clone(), mailbox)),
        )
    }
}

#[async_trait]
impl MailboxStore for MemoryMailboxes {
    async fn get(&self, mailbox_id: &str) -> Result<Option<Mailbox>, StoreError> {
        self.read(mailbox_id)
    }
}

/// The sequences table in memory.
pub type MemorySequences = MemoryTable<Sequence>;

impl MemorySequences {
    pub fn of(sequences: impl IntoIterator<Item = Sequence>) -> Self {
        Self::new(
            "sequences",
            sequences
                .into_iter()
                .map(|sequence| (sequence.sequence_id.clone(), sequence)),
        )
    }
}

#[async_trait]
impl SequenceStore for MemorySequences {
    async fn get(&self, sequence_id: &str) -> Result<Option<Sequence>, StoreError> {
        self.read(sequence_id)
    }
}

/// The opt-out table in memory: the numbers that asked to stop.
#[derive(Debug, Default)]
pub struct MemoryOptOuts {
    numbers: Mutex<HashSet<String>>,
}

impl MemoryOptOuts {
    pub fn of<'a>(numbers: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            numbers: Mutex::new(numbers.into_iter().map(str::to_owned).collect()),
        }
    }
}

#[async_trait]
impl OptOuts for MemoryOptOuts {
    async fn is_opted_out(&self, phone: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.numbers).contains(phone))
    }
}

/// A mailer that answers each send with the next scripted answer (accepted once the
/// script is used up), and keeps every email it was asked to send.
#[derive(Debug, Default)]
pub struct ScriptedMailer {
    answers: Mutex<VecDeque<Result<(), MailError>>>,
    attempts: Mutex<Vec<OutgoingEmail>>,
}

impl ScriptedMailer {
    pub fn answering(answers: impl IntoIterator<Item = Result<(), MailError>>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().collect()),
            attempts: Mutex::default(),
        }
    }

    /// Every email it was asked to send, in order.
    pub fn attempts(&self) -> Vec<OutgoingEmail> {
        lock(&self.attempts).clone()
    }
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(
        &self,
        _: &Mailbox,
        email: &OutgoingEmail,
        _: Option<Instant>,
    ) -> Result<(), MailError> {
        lock(&self.attempts).push(email.clone());
        lock(&self.answers).pop_front().unwrap_or(Ok(()))
    }
}

/// An SMS sender that answers from a script as [`ScriptedMailer`] does; an accepted text
/// gets the provider id `msg-<n>`.
#[derive(Debug, Default)]
pub struct ScriptedSmsSender {
    answers: Mutex<VecDeque<Result<(), SmsError>>>,
    attempts: Mutex<Vec<(String, String)>>,
}

impl ScriptedSmsSender {
    pub fn answering(answers: impl IntoIterator<Item = Result<(), SmsError>>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().collect()),
            attempts: Mutex::default(),
        }
    }

    /// Every (number, body) it was asked to send, in order.
    pub fn attempts(&self) -> Vec<(String, String)> {
        lock(&self.attempts).clone()
    }
}

#[async_trait]
impl SmsSender for ScriptedSmsSender {
    async fn send(&self, phone: &str, body: &str) -> Result<String, SmsError> {
        let attempt = {
            let mut attempts = lock(&self.attempts);
            attempts.push((phone.to_owned(), body.to_owned()));
            attempts.len()
        };
        lock(&self.answers)
            .pop_front()
            .unwrap_or(Ok(()))
            .map(|()| format!("msg-{attempt}"))
    }
}
