//! Shard-side driver of the group coordinators (filled in below).

#[derive(Default)]
pub struct ShardGroups {}
