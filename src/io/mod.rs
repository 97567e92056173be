//! The I/O edge: executors, io_uring probes, memlock checks.
