//! The I/O edge: host probes (io_uring, memlock) and the pinned per-core executors.
//!
//! Only this layer and the storage/network code running on glommio touch io_uring.

pub mod probe;
