//! Shoal benchmark kit.
