//! Shoal tuning kit: producer sweeps with a frontier plot and recommendation, and a host check.

pub mod host;
pub mod sweep;
