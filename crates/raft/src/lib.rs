pub use raft;
