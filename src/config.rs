//! Node configuration and limits.
