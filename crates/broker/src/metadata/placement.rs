//! Local shard placement: which shard of this node owns each local partition replica. A local,
//! stable concern (never in the Raft log): chosen once, least-loaded shard first, and persisted in
//! `DATA/meta/placement.json` (write temp, fsync, rename, fsync dir) before any shard sees it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use shoal_cluster::metadata::MetadataImage;

/// Largest placement file read at start.
pub const PLACEMENT_FILE_BYTES_MAX: u64 = 64 << 20;

#[derive(Debug, Default, Serialize, Deserialize)]
struct PlacementFile {
    /// Topic id → owning shard per partition (`None`: no local replica).
    topics: BTreeMap<Uuid, Vec<Option<u32>>>,
}

pub struct Placement {
    path: PathBuf,
    nr_shards: u32,
    topics: BTreeMap<Uuid, Vec<Option<u32>>>,
}

impl Placement {
    pub fn open(meta_dir: &Path, nr_shards: usize) -> std::io::Result<Placement> {
        let path = meta_dir.join("placement.json");
        let file: PlacementFile = match std::fs::metadata(&path) {
            Ok(m) if m.len() > PLACEMENT_FILE_BYTES_MAX => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: larger than {PLACEMENT_FILE_BYTES_MAX} bytes",
                        path.display()
                    ),
                ))
            }
            Ok(_) => serde_json::from_slice(&std::fs::read(&path)?).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PlacementFile::default(),
            Err(e) => return Err(e),
        };
        Ok(Placement {
            path,
            nr_shards: nr_shards.max(1) as u32,
            topics: file.topics,
        })
    }

    /// The shard of a local replica; a restart with fewer cores folds onto the remaining shards.
    pub fn shard(&self, topic: &Uuid, partition: usize) -> Option<u32> {
        self.topics
            .get(topic)
            .and_then(|v| v.get(partition).copied().flatten())
            .map(|s| s % self.nr_shards)
    }

    /// Places every local replica `image` names that has no shard yet and forgets removed
    /// topics; persists before returning if anything changed.
    pub fn update(&mut self, image: &MetadataImage, node_id: i32) -> std::io::Result<()> {
        let mut changed = false;
        let before = self.topics.len();
        self.topics.retain(|id, _| image.topic(id).is_some());
        changed |= self.topics.len() != before;
        let mut load = vec![0u64; self.nr_shards as usize];
        for v in self.topics.values() {
            for s in v.iter().flatten() {
                load[(*s % self.nr_shards) as usize] += 1;
            }
        }
        for t in image.topics() {
            let entry = self.topics.entry(t.id).or_default();
            for (p, state) in t.partitions.iter().enumerate() {
                if entry.len() <= p {
                    entry.resize(p + 1, None);
                }
                if entry[p].is_none() && state.replicas.contains(&node_id) {
                    let (shard, _) = load
                        .iter()
                        .enumerate()
                        .min_by_key(|(i, l)| (**l, *i))
                        .expect("at least one shard");
                    load[shard] += 1;
                    entry[p] = Some(shard as u32);
                    changed = true;
                }
            }
        }
        if changed {
            self.persist()?;
        }
        Ok(())
    }

    fn persist(&self) -> std::io::Result<()> {
        let file = PlacementFile {
            topics: self.topics.clone(),
        };
        let bytes = serde_json::to_vec(&file).expect("placement serializes");
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
