//! The durable, segmented partition log.
