//! Host probes at start-up (io_uring, memlock): failures become messages that name the fix.

pub mod probe;
