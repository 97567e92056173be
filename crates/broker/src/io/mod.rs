//! Host probes at start-up (io_uring, memlock): failures become messages that name the fix.
//! Sending responses in pieces, file ranges with sendfile(2).

pub mod probe;
pub mod send;
