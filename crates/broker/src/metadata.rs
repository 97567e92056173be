//! The node's metadata: cluster id, topics, their configs and partition placement, producer ids.
//!
//! Control plane only. Mutations are serialized by a mutex and persisted atomically
//! (`meta/cluster.json`: write temp, fsync, rename, fsync dir) before they are published as a new
//! immutable snapshot. Shards read a cached `Arc<MetadataSnapshot>` and refresh it only when
//! `version()` moves, so the data path takes no lock. (A Raft-replicated log replaces the file
//! when replication lands; the snapshot interface stays.)

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use shoal_protocol::errors as ec;

/// Producer ids are reserved on disk in blocks so a restart never reuses one.
const PRODUCER_ID_BLOCK: i64 = 1000;
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    /// Owning shard of each partition (index = partition id).
    pub partition_shards: Vec<u32>,
    pub configs: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
}

impl TopicMeta {
    pub fn partitions(&self) -> i32 {
        self.partition_shards.len() as i32
    }
}

#[derive(Debug, Default, Clone)]
pub struct MetadataSnapshot {
    pub version: u64,
    pub cluster_id: String,
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
}

#[derive(Debug, Serialize, Deserialize)]
struct MetaFile {
    cluster_id: String,
    producer_id_block_end: i64,
    topics: Vec<TopicMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError {
    pub code: i16,
    pub message: String,
}

impl MetaError {
    fn new(code: i16, message: impl Into<String>) -> Self {
        MetaError {
            code,
            message: message.into(),
        }
    }
}

struct State {
    snapshot: Arc<MetadataSnapshot>,
    producer_id_next: i64,
    producer_id_block_end: i64,
}

pub struct MetadataStore {
    path: PathBuf,
    nr_shards: usize,
    version: AtomicU64,
    state: Mutex<State>,
}

pub fn validate_topic_name(name: &str) -> Result<(), MetaError> {
    let ok = !name.is_empty()
        && name.len() <= TOPIC_NAME_BYTES_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
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

impl MetadataStore {
    /// Opens `DATA/meta/cluster.json`, creating it (with a new cluster id) when absent.
    pub fn open(data_dir: &Path, nr_shards: usize) -> std::io::Result<MetadataStore> {
        assert!(nr_shards > 0);
        let dir = data_dir.join("meta");
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            // The new directory's entry is durable only once its parent is synced.
            std::fs::File::open(data_dir)?.sync_all()?;
        }
        let path = dir.join("cluster.json");
        let file: MetaFile = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetaFile {
                cluster_id: new_cluster_id(),
                producer_id_block_end: 0,
                topics: Vec::new(),
            },
            Err(e) => return Err(e),
        };
        let mut topics = BTreeMap::new();
        let mut by_id = HashMap::new();
        for mut t in file.topics {
            // A restart with fewer cores folds partitions onto the remaining shards.
            for s in t.partition_shards.iter_mut() {
                *s %= nr_shards as u32;
            }
            by_id.insert(t.id, t.name.clone());
            topics.insert(t.name.clone(), Arc::new(t));
        }
        let store = MetadataStore {
            path,
            nr_shards,
            version: AtomicU64::new(1),
            state: Mutex::new(State {
                snapshot: Arc::new(MetadataSnapshot {
                    version: 1,
                    cluster_id: file.cluster_id,
                    topics,
                    topic_names_by_id: by_id,
                }),
                producer_id_next: file.producer_id_block_end,
                producer_id_block_end: file.producer_id_block_end,
            }),
        };
        store.persist(&store.state.lock().expect("metadata poisoned"))?;
        Ok(store)
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.state
            .lock()
            .expect("metadata poisoned")
            .snapshot
            .clone()
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        internal: bool,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, MetaError> {
        validate_topic_name(name)?;
        if partitions < 1 {
            return Err(MetaError::new(
                ec::INVALID_PARTITIONS,
                format!("number of partitions must be >= 1, got {partitions}"),
            ));
        }
        for (k, v) in &configs {
            crate::config::validate_topic_config(k, v)
                .map_err(|m| MetaError::new(ec::INVALID_CONFIG, m))?;
        }
        let mut state = self.state.lock().expect("metadata poisoned");
        if state.snapshot.topics.contains_key(name) {
            return Err(MetaError::new(
                ec::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            ));
        }
        // Place each partition on the currently least-loaded shard (stable once stored).
        let mut load = vec![0u64; self.nr_shards];
        for t in state.snapshot.topics.values() {
            for &s in &t.partition_shards {
                load[s as usize] += 1;
            }
        }
        let mut partition_shards = Vec::with_capacity(partitions as usize);
        for _ in 0..partitions {
            let (shard, _) = load
                .iter()
                .enumerate()
                .min_by_key(|(i, l)| (**l, *i))
                .expect("at least one shard");
            load[shard] += 1;
            partition_shards.push(shard as u32);
        }
        let topic = Arc::new(TopicMeta {
            name: name.to_string(),
            id: new_uuid(),
            partition_shards,
            configs,
            internal,
        });
        if validate_only {
            return Ok(topic);
        }
        let mut next = (*state.snapshot).clone();
        next.topics.insert(name.to_string(), topic.clone());
        next.topic_names_by_id.insert(topic.id, name.to_string());
        self.publish(&mut state, next)
            .map_err(|e| MetaError::new(ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicMeta>, MetaError> {
        let mut state = self.state.lock().expect("metadata poisoned");
        let Some(topic) = state.snapshot.topics.get(name).cloned() else {
            return Err(MetaError::new(
                ec::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ));
        };
        let mut next = (*state.snapshot).clone();
        next.topics.remove(name);
        next.topic_names_by_id.remove(&topic.id);
        self.publish(&mut state, next)
            .map_err(|e| MetaError::new(ec::KAFKA_STORAGE_ERROR, e.to_string()))?;
        Ok(topic)
    }

    /// A producer id never handed out before, on this node, across restarts.
    pub fn allocate_producer_id(&self) -> std::io::Result<i64> {
        let mut state = self.state.lock().expect("metadata poisoned");
        if state.producer_id_next >= state.producer_id_block_end {
            state.producer_id_block_end += PRODUCER_ID_BLOCK;
            if let Err(e) = self.persist(&state) {
                state.producer_id_block_end -= PRODUCER_ID_BLOCK;
                return Err(e);
            }
        }
        let id = state.producer_id_next;
        state.producer_id_next += 1;
        Ok(id)
    }

    fn publish(&self, state: &mut State, mut next: MetadataSnapshot) -> std::io::Result<()> {
        next.version = state.snapshot.version + 1;
        let previous = std::mem::replace(&mut state.snapshot, Arc::new(next));
        if let Err(e) = self.persist(state) {
            state.snapshot = previous;
            return Err(e);
        }
        self.version
            .store(state.snapshot.version, Ordering::Release);
        Ok(())
    }

    fn persist(&self, state: &State) -> std::io::Result<()> {
        let file = MetaFile {
            cluster_id: state.snapshot.cluster_id.clone(),
            producer_id_block_end: state.producer_id_block_end,
            topics: state
                .snapshot
                .topics
                .values()
                .map(|t| (**t).clone())
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("metadata serializes");
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(self.path.parent().expect("meta dir"))?.sync_all()?;
        Ok(())
    }
}

fn random_bytes() -> [u8; 16] {
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

fn new_uuid() -> Uuid {
    uuid::Builder::from_random_bytes(random_bytes()).into_uuid()
}

fn new_cluster_id() -> String {
    // Kafka cluster ids are 22-char url-safe base64 of a uuid.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = random_bytes();
    let n = u128::from_le_bytes(bytes);
    (0..22)
        .map(|i| ALPHABET[((n >> (i * 6)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_place_persist_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 2).unwrap();
        let t = store
            .create_topic("orders", 5, BTreeMap::new(), false, false)
            .unwrap();
        assert_eq!(t.partition_shards, vec![0, 1, 0, 1, 0]);
        let u = store
            .create_topic("audit", 1, BTreeMap::new(), false, false)
            .unwrap();
        assert_eq!(u.partition_shards, vec![1], "least-loaded shard first");
        assert_eq!(
            store
                .create_topic("orders", 1, BTreeMap::new(), false, false)
                .unwrap_err()
                .code,
            ec::TOPIC_ALREADY_EXISTS
        );
        let pid = store.allocate_producer_id().unwrap();
        let cluster = store.snapshot().cluster_id.clone();
        drop(store);
        let store = MetadataStore::open(dir.path(), 2).unwrap();
        let snap = store.snapshot();
        assert_eq!(snap.cluster_id, cluster);
        assert_eq!(snap.topic("orders").unwrap().id, t.id);
        assert!(
            store.allocate_producer_id().unwrap() > pid,
            "producer ids never reused"
        );
        store.delete_topic("orders").unwrap();
        assert!(store.snapshot().topic("orders").is_none());
    }

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

    #[test]
    fn validate_only_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1).unwrap();
        store
            .create_topic("t", 3, BTreeMap::new(), false, true)
            .unwrap();
        assert!(store.snapshot().topic("t").is_none());
    }
}
