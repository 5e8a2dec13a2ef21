//! Port: the time a deadline is measured against. Production reads the monotonic clock;
//! a test sets the time, so what is checked against a deadline does not depend on how
//! loaded the machine is.

use std::time::Instant;

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    /// The monotonic time deadlines are measured against.
    fn now(&self) -> Instant;

    /// The wall-clock time records are stamped with and due times compared to.
    fn utc(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// [`Self::utc`] in epoch seconds, as records keep it.
    fn epoch_seconds(&self) -> i64 {
        self.utc().timestamp()
    }
}

/// The monotonic clock of the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock stopped at one wall-clock time, for tests that depend on the time of day
/// (quiet hours, due times). Deadlines still read the machine's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock {
    pub utc: DateTime<Utc>,
}

impl Clock for FixedClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn utc(&self) -> DateTime<Utc> {
        self.utc
    }
}
