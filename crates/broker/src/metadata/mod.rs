//! The node's view of cluster metadata: an immutable `MetadataSnapshot` rendered from the
//! committed `shoal_metadata::MetadataImage` plus this node's local shard placement.
//!
//! One place applies committed metadata: the metadata driver thread (`driver.rs`) runs this
//! node's `shoal_cluster::MetadataNode` (Raft member, active controller while Raft leader, broker
//! duties), persists its log in `DATA/meta/` with `FileLogStore`, and after every change publishes
//! a new `Arc<MetadataSnapshot>`. Shards read a cached `Arc` and refresh it only when the atomic
//! `version()` moves, so the data path takes no lock. Controller work (CreateTopics, DeleteTopics,
//! producer id blocks) is sent to the driver over a bounded queue and answered once committed.

mod driver;
mod net;
mod placement;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

pub use driver::{start, DriverConfig, Peer};
pub use net::{replica_hello, ReplicaHandoff};
pub use shoal_cluster::metadata::{
    ConfigOp, ControllerError, ControllerReply, ControllerRequest, NewTopic,
};

use shoal_protocol::errors as ec;

pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// A shard waiting for the metadata driver checks for the answer this often (a cross-thread
/// waker would wake a glommio task from a foreign thread; see the glommio waker incident).
pub const REPLY_POLL_MS: u64 = 2;
/// Controller requests queued for the driver; more are refused (REQUEST_TIMED_OUT).
pub const METADATA_QUEUE_MAX: usize = 1024;

#[derive(Debug, Clone)]
pub struct PartitionMeta {
    /// Leading broker, -1 when none is available.
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped by every committed change of this partition (KIP-497's partition epoch).
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas on brokers that are fenced or unknown.
    pub offline: Vec<i32>,
    /// The local shard owning this replica, when this node holds one.
    pub shard: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub parts: Vec<PartitionMeta>,
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

impl TopicMeta {
    pub fn partitions(&self) -> i32 {
        self.parts.len() as i32
    }
}

#[derive(Debug, Clone)]
pub struct BrokerMeta {
    pub id: i32,
    pub host: String,
    pub port: i32,
    /// `host:port` of its cluster listener (Raft and replication).
    pub cluster_addr: String,
    pub rack: Option<String>,
    pub fenced: bool,
}

#[derive(Debug, Default, Clone)]
pub struct MetadataSnapshot {
    pub version: u64,
    pub cluster_id: String,
    pub node_id: i32,
    /// The active controller (Raft leader) as this node knows it, -1 when none.
    pub controller_id: i32,
    /// Whether the controller last told this broker it is fenced.
    pub fenced: bool,
    /// Every registered broker, by id.
    pub brokers: Vec<BrokerMeta>,
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    pub topic_names_by_id: HashMap<Uuid, String>,
}

impl MetadataSnapshot {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
    }
    pub fn broker(&self, id: i32) -> Option<&BrokerMeta> {
        self.brokers.iter().find(|b| b.id == id)
    }
    /// Unfenced brokers (those clients should see).
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerMeta> {
        self.brokers.iter().filter(|b| !b.fenced)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError {
    pub code: i16,
    pub message: String,
}

impl MetaError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        MetaError {
            code,
            message: message.into(),
        }
    }
}

pub fn validate_topic_name(name: &str) -> Result<(), MetaError> {
    if shoal_cluster::metadata::image::validate_topic_name(name) {
        Ok(())
    } else {
        Err(MetaError::new(
            ec::INVALID_TOPIC_EXCEPTION,
            format!(
                "invalid topic name '{name}': 1..={TOPIC_NAME_BYTES_MAX} chars of [a-zA-Z0-9._-], not '.' or '..'"
            ),
        ))
    }
}

/// What the driver publishes and shards read.
pub(crate) struct Published {
    version: AtomicU64,
    snapshot: Mutex<Arc<MetadataSnapshot>>,
}

impl Published {
    fn publish(&self, mut next: MetadataSnapshot) {
        let mut slot = self.snapshot.lock().expect("metadata poisoned");
        next.version = slot.version + 1;
        let version = next.version;
        *slot = Arc::new(next);
        self.version.store(version, Ordering::Release);
    }
}

/// A request to the driver thread; the answer comes back on `reply`, polled by the shard.
pub(crate) enum Command {
    Controller {
        request: ControllerRequest,
        reply: std::sync::mpsc::SyncSender<Result<ControllerReply, ControllerError>>,
    },
    ProducerId {
        reply: std::sync::mpsc::SyncSender<Result<i64, ControllerError>>,
    },
    /// Controlled shutdown: ask the controller to move this broker's leaderships away.
    ControlledShutdown,
    /// A request made in this broker's name: the driver fills in its id and current epoch.
    AsBroker {
        make: BrokerRequest,
        reply: std::sync::mpsc::SyncSender<Result<ControllerReply, ControllerError>>,
    },
}

/// Builds a controller request from this broker's id and epoch.
pub(crate) type BrokerRequest = Box<dyn FnOnce(i32, i64) -> ControllerRequest + Send>;

/// The shards' handle on the metadata: the published snapshot and the driver's request queue.
pub struct MetadataStore {
    published: Arc<Published>,
    commands: crossbeam::channel::Sender<driver::Input>,
    /// How long a shard waits for a controller answer before giving up (REQUEST_TIMED_OUT).
    reply_timeout: Duration,
}

impl MetadataStore {
    pub fn version(&self) -> u64 {
        self.published.version.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.published
            .snapshot
            .lock()
            .expect("metadata poisoned")
            .clone()
    }

    /// Sends `request` to the controller (through this node's driver, which forwards it to the
    /// active controller) and waits for its committed answer.
    pub async fn controller(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, ControllerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Command::Controller { request, reply: tx })?;
        poll_reply(rx, self.reply_timeout).await
    }

    /// Kafka's AlterPartition from this broker as a partition leader: propose `new_isr` at
    /// these leader and partition epochs; answered with the committed partition state.
    pub async fn alter_partition(
        &self,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<ControllerReply, ControllerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let make: BrokerRequest =
            Box::new(
                move |broker_id, broker_epoch| ControllerRequest::AlterPartition {
                    broker_id,
                    broker_epoch,
                    topic_id,
                    partition,
                    leader_epoch,
                    partition_epoch,
                    new_isr,
                },
            );
        self.send(Command::AsBroker { make, reply: tx })?;
        poll_reply(rx, self.reply_timeout).await
    }

    /// A producer id never handed out before in this cluster (from this node's committed block).
    pub async fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Command::ProducerId { reply: tx })?;
        poll_reply(rx, self.reply_timeout).await
    }

    /// Creates one topic through the controller and returns it once this node's snapshot has it.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, ControllerError> {
        let reply = self
            .controller(ControllerRequest::CreateTopics {
                topics: vec![NewTopic {
                    name: name.to_string(),
                    partitions,
                    replication_factor,
                    configs,
                }],
            })
            .await?;
        let id = match reply {
            ControllerReply::CreateTopics(list) => list
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| r)
                .unwrap_or(Err(ControllerError::Internal("no answer for topic".into())))?,
            other => {
                return Err(ControllerError::Internal(format!(
                    "unexpected reply {other:?}"
                )))
            }
        };
        self.wait_for(self.reply_timeout, |m| {
            m.topic(name).is_some_and(|t| t.id == id)
        })
        .await;
        match self.snapshot().topic(name) {
            Some(t) if t.id == id => Ok(t.clone()),
            _ => Err(ControllerError::Timeout),
        }
    }

    /// Polls (bounded) until the published snapshot satisfies `ready`, `pause` between polls.
    async fn poll_until<F: std::future::Future<Output = ()>>(
        &self,
        timeout: Duration,
        ready: impl Fn(&MetadataSnapshot) -> bool,
        pause: impl Fn() -> F,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        while !ready(&self.snapshot()) {
            if Instant::now() >= deadline {
                return false;
            }
            pause().await;
        }
        true
    }

    /// Waits (bounded) until the published snapshot satisfies `ready`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&MetadataSnapshot) -> bool,
    ) -> bool {
        let pause = || glommio::timer::sleep(Duration::from_millis(REPLY_POLL_MS));
        self.poll_until(timeout, ready, pause).await
    }

    /// Blocking variant of [`Self::wait_for`] for threads outside the shards (start-up).
    pub fn wait_for_blocking(
        &self,
        timeout: Duration,
        ready: impl Fn(&MetadataSnapshot) -> bool,
    ) -> bool {
        let pause = || async { std::thread::sleep(Duration::from_millis(REPLY_POLL_MS)) };
        futures_lite::future::block_on(self.poll_until(timeout, ready, pause))
    }

    /// Asks the controller to move this broker's leaderships to other ISR members (Kafka's
    /// controlled shutdown); the moves show in later snapshots.
    pub fn begin_controlled_shutdown(&self) -> Result<(), ControllerError> {
        self.send(Command::ControlledShutdown)
    }

    pub fn reply_timeout(&self) -> Duration {
        self.reply_timeout
    }

    fn send(&self, command: Command) -> Result<(), ControllerError> {
        self.commands
            .try_send(driver::Input::Command(command))
            .map_err(|_| ControllerError::Timeout)
    }
}

async fn poll_reply<T>(
    rx: std::sync::mpsc::Receiver<Result<T, ControllerError>>,
    timeout: Duration,
) -> Result<T, ControllerError> {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.try_recv() {
            Ok(v) => return v,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return Err(ControllerError::Internal("metadata driver stopped".into()))
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
        if Instant::now() >= deadline {
            return Err(ControllerError::Timeout);
        }
        glommio::timer::sleep(Duration::from_millis(REPLY_POLL_MS)).await;
    }
}

pub(crate) fn random_bytes() -> [u8; 16] {
    use std::io::Read;
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (nanos ^ (std::process::id() as u128) << 64).to_le_bytes();
    }
    b
}

pub(crate) fn new_uuid() -> Uuid {
    uuid::Builder::from_random_bytes(random_bytes()).into_uuid()
}

/// Kafka cluster ids are 22-char url-safe base64 of 16 bytes.
pub(crate) fn cluster_id_from(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let n = u128::from_le_bytes(bytes);
    (0..22)
        .map(|i| ALPHABET[((n >> (i * 6)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_validated() {
        for bad in ["", ".", "..", "a/b", "with space", &"x".repeat(250)] {
            assert_eq!(
                validate_topic_name(bad).unwrap_err().code,
                ec::INVALID_TOPIC_EXCEPTION
            );
        }
        validate_topic_name("chat.v1_a-b").unwrap();
    }
}
