//! Port: the time a deadline is measured against. Production reads the monotonic clock;
//! a test sets the time, so what is checked against a deadline does not depend on how
//! loaded the machine is.

use std::time::Instant;

pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The monotonic clock of the machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
