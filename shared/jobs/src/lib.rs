//! Symphony's jobs: each old cron route's messages, handlers, work source and legacy path.

#[macro_use]
mod names;

pub mod cache;
pub mod campaign;
pub mod email;
pub mod memory;
pub mod secrets;
pub mod sms;
pub mod template;
pub mod window;
