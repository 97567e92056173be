//! Shards, connections, request handling.
