//! What every shard of a node shares, read-only or atomic: the configuration, the metadata store
//! and the node's counters. A shard holds this, never the node's start-up machinery.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use crate::config::NodeConfig;
use crate::metadata::MetadataStore;

pub struct NodeContext {
    pub config: NodeConfig,
    pub nr_shards: usize,
    pub metadata: MetadataStore,
    pub shutdown: AtomicBool,
    pub connections: AtomicUsize,
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Per shard: replication channels the cluster listener accepted for it.
    pub replica_accepts: Vec<crossbeam::channel::Receiver<(u64, std::net::TcpStream)>>,
    /// Cluster addresses of the voters as configured (`controller_quorum_voters`): the way
    /// this node reaches them, which may differ from what they registered (a proxy).
    pub peer_cluster_addrs: std::collections::HashMap<i32, String>,
}

impl NodeContext {
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }
}
