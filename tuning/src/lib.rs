//! Shoal tuning kit.
