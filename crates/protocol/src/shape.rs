//! Structural pre-check of request (and, for the client, response) bodies, run before
//! `kafka-protocol` decodes them.
//!
//! `kafka-protocol` preallocates `Vec::with_capacity(count)` from an array count taken off the
//! wire, so a 12-byte frame claiming 2^31 topics asks for hundreds of GiB and aborts the process
//! (allocation failure is not a panic). This walker follows each supported request schema
//! without allocating and rejects any array whose count cannot fit in the bytes that remain
//! (count x minimum element size). Anything it accepts is structurally complete, so the decoder
//! that follows reads the same fields at the same offsets.
//!
//! Schemas list only what matters for structure: widths of fixed fields, strings, bytes, arrays
//! and the tagged-field sections of flexible versions (flexible = request header v2). Known
//! tagged fields are walked inside their declared size and must fill it exactly, because the
//! decoder reads them without honouring that size.

use kafka_protocol::messages::ApiKey;

/// The wire shape of one field.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// Fixed width: int8/bool (1), int16 (2), int32 (4), int64 (8), uuid (16).
    Fixed(usize),
    /// STRING / NULLABLE_STRING (COMPACT_ in flexible versions).
    Str,
    /// BYTES / NULLABLE_BYTES / RECORDS.
    Bytes,
    /// Array of structs.
    Array(&'static Struct),
    /// A single struct (only as a tagged field).
    Struct(&'static Struct),
    /// Array of fixed-width values (e.g. []int32).
    ArrayFixed(usize),
    /// Array of strings.
    ArrayStr,
}

/// A field present in versions `min..=max`.
#[derive(Debug, Clone, Copy)]
struct Field {
    ty: Ty,
    min: i16,
    max: i16,
}

#[derive(Debug)]
struct Struct {
    fields: &'static [Field],
    /// Tagged fields the decoder knows (it reads them from the stream at their own length).
    tagged: &'static [(u32, Ty)],
}

const fn all(ty: Ty) -> Field {
    Field {
        ty,
        min: 0,
        max: i16::MAX,
    }
}
const fn from(min: i16, ty: Ty) -> Field {
    Field {
        ty,
        min,
        max: i16::MAX,
    }
}
const fn until(max: i16, ty: Ty) -> Field {
    Field { ty, min: 0, max }
}
const fn within(min: i16, max: i16, ty: Ty) -> Field {
    Field { ty, min, max }
}
const fn st(fields: &'static [Field]) -> Struct {
    Struct {
        fields,
        tagged: &[],
    }
}

const I8: Ty = Ty::Fixed(1);
const BOOL: Ty = Ty::Fixed(1);
const I16: Ty = Ty::Fixed(2);
const I32: Ty = Ty::Fixed(4);
const I64: Ty = Ty::Fixed(8);
const UUID: Ty = Ty::Fixed(16);
const STR: Ty = Ty::Str;
const BYTES: Ty = Ty::Bytes;

static API_VERSIONS: Struct = st(&[from(3, STR), from(3, STR)]);

static PRODUCE_PARTITION: Struct = st(&[all(I32), all(BYTES)]);
static PRODUCE_TOPIC: Struct = st(&[
    until(12, STR),
    from(13, UUID),
    all(Ty::Array(&PRODUCE_PARTITION)),
]);
static PRODUCE: Struct = st(&[all(STR), all(I16), all(I32), all(Ty::Array(&PRODUCE_TOPIC))]);

static FETCH_PARTITION: Struct = Struct {
    fields: &[
        all(I32),
        from(9, I32),
        all(I64),
        from(12, I32),
        from(5, I64),
        all(I32),
    ],
    tagged: &[(0, UUID), (1, I64)],
};
static FETCH_TOPIC: Struct = st(&[
    until(12, STR),
    from(13, UUID),
    all(Ty::Array(&FETCH_PARTITION)),
]);
static FETCH_FORGOTTEN: Struct = st(&[
    within(7, 12, STR),
    from(13, UUID),
    from(7, Ty::ArrayFixed(4)),
]);
static FETCH_REPLICA_STATE: Struct = st(&[from(15, I32), from(15, I64)]);
static FETCH: Struct = Struct {
    fields: &[
        until(14, I32),
        all(I32),
        all(I32),
        all(I32),
        all(I8),
        from(7, I32),
        from(7, I32),
        all(Ty::Array(&FETCH_TOPIC)),
        from(7, Ty::Array(&FETCH_FORGOTTEN)),
        from(11, STR),
    ],
    tagged: &[(0, STR), (1, Ty::Struct(&FETCH_REPLICA_STATE))],
};

static LIST_OFFSETS_PARTITION: Struct = st(&[all(I32), from(4, I32), all(I64)]);
static LIST_OFFSETS_TOPIC: Struct = st(&[all(STR), all(Ty::Array(&LIST_OFFSETS_PARTITION))]);
static LIST_OFFSETS: Struct = st(&[
    all(I32),
    from(2, I8),
    all(Ty::Array(&LIST_OFFSETS_TOPIC)),
    from(10, I32),
]);

static METADATA_TOPIC: Struct = st(&[from(10, UUID), all(STR)]);
static METADATA: Struct = st(&[
    all(Ty::Array(&METADATA_TOPIC)),
    from(4, BOOL),
    within(8, 10, BOOL),
    from(8, BOOL),
]);

static OFFSET_COMMIT_PARTITION: Struct = st(&[all(I32), all(I64), from(6, I32), all(STR)]);
static OFFSET_COMMIT_TOPIC: Struct = st(&[all(STR), all(Ty::Array(&OFFSET_COMMIT_PARTITION))]);
static OFFSET_COMMIT: Struct = st(&[
    all(STR),
    all(I32),
    all(STR),
    from(7, STR),
    until(4, I64),
    all(Ty::Array(&OFFSET_COMMIT_TOPIC)),
]);

static OFFSET_FETCH_TOPIC: Struct = st(&[until(7, STR), until(7, Ty::ArrayFixed(4))]);
static OFFSET_FETCH_GROUP_TOPIC: Struct = st(&[from(8, STR), from(8, Ty::ArrayFixed(4))]);
static OFFSET_FETCH_GROUP: Struct = st(&[
    from(8, STR),
    from(9, STR),
    from(9, I32),
    from(8, Ty::Array(&OFFSET_FETCH_GROUP_TOPIC)),
]);
static OFFSET_FETCH: Struct = st(&[
    until(7, STR),
    until(7, Ty::Array(&OFFSET_FETCH_TOPIC)),
    from(8, Ty::Array(&OFFSET_FETCH_GROUP)),
    from(7, BOOL),
]);

static FIND_COORDINATOR: Struct = st(&[until(3, STR), from(1, I8), from(4, Ty::ArrayStr)]);

static JOIN_GROUP_PROTOCOL: Struct = st(&[all(STR), all(BYTES)]);
static JOIN_GROUP: Struct = st(&[
    all(STR),
    all(I32),
    from(1, I32),
    all(STR),
    from(5, STR),
    all(STR),
    all(Ty::Array(&JOIN_GROUP_PROTOCOL)),
    from(8, STR),
]);

static HEARTBEAT: Struct = st(&[all(STR), all(I32), all(STR), from(3, STR)]);

static LEAVE_GROUP_MEMBER: Struct = st(&[from(3, STR), from(3, STR), from(5, STR)]);
static LEAVE_GROUP: Struct = st(&[
    all(STR),
    until(2, STR),
    from(3, Ty::Array(&LEAVE_GROUP_MEMBER)),
]);

static SYNC_GROUP_ASSIGNMENT: Struct = st(&[all(STR), all(BYTES)]);
static SYNC_GROUP: Struct = st(&[
    all(STR),
    all(I32),
    all(STR),
    from(3, STR),
    from(5, STR),
    from(5, STR),
    all(Ty::Array(&SYNC_GROUP_ASSIGNMENT)),
]);

static DESCRIBE_GROUPS: Struct = st(&[all(Ty::ArrayStr), from(3, BOOL)]);

static LIST_GROUPS: Struct = st(&[from(4, Ty::ArrayStr), from(5, Ty::ArrayStr)]);

static INIT_PRODUCER_ID: Struct = st(&[all(STR), all(I32), from(3, I64), from(3, I16)]);

static CREATE_TOPICS_ASSIGNMENT: Struct = st(&[all(I32), all(Ty::ArrayFixed(4))]);
static CREATE_TOPICS_CONFIG: Struct = st(&[all(STR), all(STR)]);
static CREATE_TOPICS_TOPIC: Struct = st(&[
    all(STR),
    all(I32),
    all(I16),
    all(Ty::Array(&CREATE_TOPICS_ASSIGNMENT)),
    all(Ty::Array(&CREATE_TOPICS_CONFIG)),
]);
static CREATE_TOPICS: Struct = st(&[all(Ty::Array(&CREATE_TOPICS_TOPIC)), all(I32), all(BOOL)]);

static DELETE_TOPICS_STATE: Struct = st(&[from(6, STR), from(6, UUID)]);
static DELETE_TOPICS: Struct = st(&[
    from(6, Ty::Array(&DELETE_TOPICS_STATE)),
    until(5, Ty::ArrayStr),
    all(I32),
]);

static DESCRIBE_CONFIGS_RESOURCE: Struct = st(&[all(I8), all(STR), all(Ty::ArrayStr)]);
static DESCRIBE_CONFIGS: Struct = st(&[
    all(Ty::Array(&DESCRIBE_CONFIGS_RESOURCE)),
    all(BOOL),
    from(3, BOOL),
]);

static CREATE_PARTITIONS_ASSIGNMENT: Struct = st(&[all(Ty::ArrayFixed(4))]);
static CREATE_PARTITIONS_TOPIC: Struct = st(&[
    all(STR),
    all(I32),
    all(Ty::Array(&CREATE_PARTITIONS_ASSIGNMENT)),
]);
static CREATE_PARTITIONS: Struct = st(&[
    all(Ty::Array(&CREATE_PARTITIONS_TOPIC)),
    all(I32),
    all(BOOL),
]);

static DELETE_GROUPS: Struct = st(&[all(Ty::ArrayStr)]);

static ALTERABLE_CONFIG: Struct = st(&[all(STR), all(I8), all(STR)]);
static ALTER_CONFIGS_RESOURCE: Struct = st(&[all(I8), all(STR), all(Ty::Array(&ALTERABLE_CONFIG))]);
static INCREMENTAL_ALTER_CONFIGS: Struct =
    st(&[all(Ty::Array(&ALTER_CONFIGS_RESOURCE)), all(BOOL)]);

static OFFSET_FOR_LEADER_EPOCH_PARTITION: Struct = st(&[all(I32), all(I32), all(I32)]);
static OFFSET_FOR_LEADER_EPOCH_TOPIC: Struct =
    st(&[all(STR), all(Ty::Array(&OFFSET_FOR_LEADER_EPOCH_PARTITION))]);
static OFFSET_FOR_LEADER_EPOCH: Struct =
    st(&[from(3, I32), all(Ty::Array(&OFFSET_FOR_LEADER_EPOCH_TOPIC))]);

static OFFSET_DELETE_PARTITION: Struct = st(&[all(I32)]);
static OFFSET_DELETE_TOPIC: Struct = st(&[all(STR), all(Ty::Array(&OFFSET_DELETE_PARTITION))]);
static OFFSET_DELETE: Struct = st(&[all(STR), all(Ty::Array(&OFFSET_DELETE_TOPIC))]);

static DESCRIBE_CLUSTER: Struct = st(&[all(BOOL), from(1, I8), from(2, BOOL)]);

// Responses (the ones Shoal's client reads).

static R_API_VERSION: Struct = st(&[all(I16), all(I16), all(I16)]);
static R_FEATURE: Struct = st(&[from(3, STR), from(3, I16), from(3, I16)]);
static R_API_VERSIONS: Struct = Struct {
    fields: &[all(I16), all(Ty::Array(&R_API_VERSION)), from(1, I32)],
    tagged: &[
        (0, Ty::Array(&R_FEATURE)),
        (1, I64),
        (2, Ty::Array(&R_FEATURE)),
        (3, BOOL),
    ],
};

static R_PRODUCE_RECORD_ERROR: Struct = st(&[from(8, I32), from(8, STR)]);
static R_LEADER_ID_AND_EPOCH: Struct = st(&[all(I32), all(I32)]);
static R_NODE_ENDPOINT: Struct = st(&[all(I32), all(STR), all(I32), all(STR)]);
static R_PRODUCE_PARTITION: Struct = Struct {
    fields: &[
        all(I32),
        all(I16),
        all(I64),
        all(I64),
        from(5, I64),
        from(8, Ty::Array(&R_PRODUCE_RECORD_ERROR)),
        from(8, STR),
    ],
    tagged: &[(0, Ty::Struct(&R_LEADER_ID_AND_EPOCH))],
};
static R_PRODUCE_TOPIC: Struct = st(&[
    until(12, STR),
    from(13, UUID),
    all(Ty::Array(&R_PRODUCE_PARTITION)),
]);
static R_PRODUCE: Struct = Struct {
    fields: &[all(Ty::Array(&R_PRODUCE_TOPIC)), all(I32)],
    tagged: &[(0, Ty::Array(&R_NODE_ENDPOINT))],
};

static R_FETCH_ABORTED: Struct = st(&[all(I64), all(I64)]);
static R_EPOCH_END_OFFSET: Struct = st(&[all(I32), all(I64)]);
static R_SNAPSHOT_ID: Struct = st(&[all(I64), all(I32)]);
static R_FETCH_PARTITION: Struct = Struct {
    fields: &[
        all(I32),
        all(I16),
        all(I64),
        all(I64),
        from(5, I64),
        all(Ty::Array(&R_FETCH_ABORTED)),
        from(11, I32),
        all(BYTES),
    ],
    tagged: &[
        (0, Ty::Struct(&R_EPOCH_END_OFFSET)),
        (1, Ty::Struct(&R_LEADER_ID_AND_EPOCH)),
        (2, Ty::Struct(&R_SNAPSHOT_ID)),
    ],
};
static R_FETCH_TOPIC: Struct = st(&[
    until(12, STR),
    from(13, UUID),
    all(Ty::Array(&R_FETCH_PARTITION)),
]);
static R_FETCH: Struct = Struct {
    fields: &[
        all(I32),
        from(7, I16),
        from(7, I32),
        all(Ty::Array(&R_FETCH_TOPIC)),
    ],
    tagged: &[(0, Ty::Array(&R_NODE_ENDPOINT))],
};

static R_LIST_OFFSETS_PARTITION: Struct =
    st(&[all(I32), all(I16), all(I64), all(I64), from(4, I32)]);
static R_LIST_OFFSETS_TOPIC: Struct = st(&[all(STR), all(Ty::Array(&R_LIST_OFFSETS_PARTITION))]);
static R_LIST_OFFSETS: Struct = st(&[from(2, I32), all(Ty::Array(&R_LIST_OFFSETS_TOPIC))]);

static R_METADATA_BROKER: Struct = st(&[all(I32), all(STR), all(I32), from(1, STR)]);
static R_METADATA_PARTITION: Struct = st(&[
    all(I16),
    all(I32),
    all(I32),
    from(7, I32),
    all(Ty::ArrayFixed(4)),
    all(Ty::ArrayFixed(4)),
    from(5, Ty::ArrayFixed(4)),
]);
static R_METADATA_TOPIC: Struct = st(&[
    all(I16),
    all(STR),
    from(10, UUID),
    from(1, BOOL),
    all(Ty::Array(&R_METADATA_PARTITION)),
    from(8, I32),
]);
static R_METADATA: Struct = st(&[
    from(3, I32),
    all(Ty::Array(&R_METADATA_BROKER)),
    from(2, STR),
    from(1, I32),
    all(Ty::Array(&R_METADATA_TOPIC)),
    within(8, 10, I32),
    from(13, I16),
]);

static R_OFFSET_FETCH_PARTITION: Struct = st(&[
    until(7, I32),
    until(7, I64),
    within(5, 7, I32),
    until(7, STR),
    until(7, I16),
]);
static R_OFFSET_FETCH_TOPIC: Struct = st(&[
    until(7, STR),
    until(7, Ty::Array(&R_OFFSET_FETCH_PARTITION)),
]);
static R_OFFSET_FETCH_GROUP_PARTITION: Struct = st(&[
    from(8, I32),
    from(8, I64),
    from(8, I32),
    from(8, STR),
    from(8, I16),
]);
static R_OFFSET_FETCH_GROUP_TOPIC: Struct = st(&[
    within(8, 9, STR),
    from(10, UUID),
    from(8, Ty::Array(&R_OFFSET_FETCH_GROUP_PARTITION)),
]);
static R_OFFSET_FETCH_GROUP: Struct = st(&[
    from(8, STR),
    from(8, Ty::Array(&R_OFFSET_FETCH_GROUP_TOPIC)),
    from(8, I16),
]);
static R_OFFSET_FETCH: Struct = st(&[
    from(3, I32),
    until(7, Ty::Array(&R_OFFSET_FETCH_TOPIC)),
    within(2, 7, I16),
    from(8, Ty::Array(&R_OFFSET_FETCH_GROUP)),
]);

static R_COORDINATOR: Struct = st(&[
    from(4, STR),
    from(4, I32),
    from(4, STR),
    from(4, I32),
    from(4, I16),
    from(4, STR),
]);
static R_FIND_COORDINATOR: Struct = st(&[
    from(1, I32),
    until(3, I16),
    within(1, 3, STR),
    until(3, I32),
    until(3, STR),
    until(3, I32),
    from(4, Ty::Array(&R_COORDINATOR)),
]);

static R_DESCRIBED_MEMBER: Struct = st(&[
    all(STR),
    from(4, STR),
    all(STR),
    all(STR),
    all(BYTES),
    all(BYTES),
]);
static R_DESCRIBED_GROUP: Struct = st(&[
    all(I16),
    from(6, STR),
    all(STR),
    all(STR),
    all(STR),
    all(STR),
    all(Ty::Array(&R_DESCRIBED_MEMBER)),
    from(3, I32),
]);
static R_DESCRIBE_GROUPS: Struct = st(&[from(1, I32), all(Ty::Array(&R_DESCRIBED_GROUP))]);

static R_LISTED_GROUP: Struct = st(&[all(STR), all(STR), from(4, STR), from(5, STR)]);
static R_LIST_GROUPS: Struct = st(&[from(1, I32), all(I16), all(Ty::Array(&R_LISTED_GROUP))]);

static R_CREATE_TOPICS_CONFIG: Struct = st(&[
    from(5, STR),
    from(5, STR),
    from(5, BOOL),
    from(5, I8),
    from(5, BOOL),
]);
static R_CREATE_TOPICS_TOPIC: Struct = Struct {
    fields: &[
        all(STR),
        from(7, UUID),
        all(I16),
        all(STR),
        from(5, I32),
        from(5, I16),
        from(5, Ty::Array(&R_CREATE_TOPICS_CONFIG)),
    ],
    tagged: &[(0, I16)],
};
static R_CREATE_TOPICS: Struct = st(&[all(I32), all(Ty::Array(&R_CREATE_TOPICS_TOPIC))]);

static R_DELETE_TOPICS_TOPIC: Struct = st(&[all(STR), from(6, UUID), all(I16), from(5, STR)]);
static R_DELETE_TOPICS: Struct = st(&[all(I32), all(Ty::Array(&R_DELETE_TOPICS_TOPIC))]);

static R_CONFIG_SYNONYM: Struct = st(&[all(STR), all(STR), all(I8)]);
static R_CONFIG_ENTRY: Struct = st(&[
    all(STR),
    all(STR),
    all(BOOL),
    all(I8),
    all(BOOL),
    all(Ty::Array(&R_CONFIG_SYNONYM)),
    from(3, I8),
    from(3, STR),
]);
static R_DESCRIBE_CONFIGS_RESULT: Struct = st(&[
    all(I16),
    all(STR),
    all(I8),
    all(STR),
    all(Ty::Array(&R_CONFIG_ENTRY)),
]);
static R_DESCRIBE_CONFIGS: Struct = st(&[all(I32), all(Ty::Array(&R_DESCRIBE_CONFIGS_RESULT))]);

static R_CREATE_PARTITIONS_RESULT: Struct = st(&[all(STR), all(I16), all(STR)]);
static R_CREATE_PARTITIONS: Struct = st(&[all(I32), all(Ty::Array(&R_CREATE_PARTITIONS_RESULT))]);

static R_ALTER_CONFIGS_RESULT: Struct = st(&[all(I16), all(STR), all(I8), all(STR)]);
static R_INCREMENTAL_ALTER_CONFIGS: Struct =
    st(&[all(I32), all(Ty::Array(&R_ALTER_CONFIGS_RESULT))]);

fn response_schema(api_key: ApiKey) -> Option<&'static Struct> {
    Some(match api_key {
        ApiKey::ApiVersions => &R_API_VERSIONS,
        ApiKey::Produce => &R_PRODUCE,
        ApiKey::Fetch => &R_FETCH,
        ApiKey::ListOffsets => &R_LIST_OFFSETS,
        ApiKey::Metadata => &R_METADATA,
        ApiKey::OffsetFetch => &R_OFFSET_FETCH,
        ApiKey::FindCoordinator => &R_FIND_COORDINATOR,
        ApiKey::DescribeGroups => &R_DESCRIBE_GROUPS,
        ApiKey::ListGroups => &R_LIST_GROUPS,
        ApiKey::CreateTopics => &R_CREATE_TOPICS,
        ApiKey::DeleteTopics => &R_DELETE_TOPICS,
        ApiKey::DescribeConfigs => &R_DESCRIBE_CONFIGS,
        ApiKey::CreatePartitions => &R_CREATE_PARTITIONS,
        ApiKey::IncrementalAlterConfigs => &R_INCREMENTAL_ALTER_CONFIGS,
        _ => return None,
    })
}

fn schema(api_key: ApiKey) -> Option<&'static Struct> {
    Some(match api_key {
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::Metadata => &METADATA,
        ApiKey::OffsetCommit => &OFFSET_COMMIT,
        ApiKey::OffsetFetch => &OFFSET_FETCH,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::JoinGroup => &JOIN_GROUP,
        ApiKey::Heartbeat => &HEARTBEAT,
        ApiKey::LeaveGroup => &LEAVE_GROUP,
        ApiKey::SyncGroup => &SYNC_GROUP,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS,
        ApiKey::ListGroups => &LIST_GROUPS,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS,
        ApiKey::DeleteGroups => &DELETE_GROUPS,
        ApiKey::OffsetForLeaderEpoch => &OFFSET_FOR_LEADER_EPOCH,
        ApiKey::OffsetDelete => &OFFSET_DELETE,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS,
        _ => return None,
    })
}

/// Why a body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("truncated at byte {at}")]
    Truncated { at: usize },
    #[error("negative length {length} at byte {at}")]
    NegativeLength { length: i32, at: usize },
    #[error("array of {count} elements at byte {at} cannot fit in the {remaining} bytes left")]
    ArrayTooLong {
        count: u64,
        at: usize,
        remaining: usize,
    },
    #[error("tagged field {tag} does not fill its {size} bytes")]
    TaggedSize { tag: u32, size: usize },
    #[error("array nesting deeper than {depth_max}")]
    TooDeep { depth_max: usize },
    #[error("more than {elements_max} struct/string array elements in one message")]
    TooManyElements { elements_max: u64 },
    #[error("no schema for {0:?}")]
    NoSchema(ApiKey),
}

/// Struct and string array elements allowed in one message. Each decodes into a Rust value
/// many times its smallest encoding (a 2-byte topic name becomes an ~80-byte struct), so this
/// bounds the memory one request can make the decoder use (~50 MiB), whatever the frame size.
/// Far above real use: a Fetch of every partition of a 100k-partition cluster is 100k.
pub const ARRAY_ELEMENTS_MAX: u64 = 1 << 18;

/// The same bound for responses the client reads (metadata of a large cluster lists every
/// partition and its replicas).
pub const RESPONSE_ARRAY_ELEMENTS_MAX: u64 = 1 << 22;

/// Nesting depth limit; the deepest supported schema nests 4 levels.
const DEPTH_MAX: usize = 8;

struct Walker<'a> {
    buf: &'a [u8],
    at: usize,
    version: i16,
    flexible: bool,
    /// Struct and string array elements seen so far, and the limit.
    elements: u64,
    elements_max: u64,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<(), ShapeError> {
        if self.remaining() < n {
            return Err(ShapeError::Truncated { at: self.at });
        }
        self.at += n;
        Ok(())
    }

    fn be_i16(&mut self) -> Result<i16, ShapeError> {
        let at = self.at;
        self.take(2)?;
        Ok(i16::from_be_bytes([self.buf[at], self.buf[at + 1]]))
    }

    fn be_i32(&mut self) -> Result<i32, ShapeError> {
        let at = self.at;
        self.take(4)?;
        let b = &self.buf[at..at + 4];
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Mirrors kafka-protocol's UnsignedVarInt: at most 5 bytes, high bits dropped.
    fn uvarint(&mut self) -> Result<u32, ShapeError> {
        let mut value = 0u32;
        for i in 0..5 {
            let at = self.at;
            self.take(1)?;
            let b = self.buf[at] as u32;
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// Length of a string/bytes/array: `None` for null.
    fn length(&mut self, wide: bool) -> Result<Option<u64>, ShapeError> {
        let at = self.at;
        if self.flexible {
            let n = self.uvarint()?;
            return Ok(n.checked_sub(1).map(u64::from));
        }
        let n = if wide {
            self.be_i32()?
        } else {
            self.be_i16()? as i32
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(ShapeError::NegativeLength { length: n, at }),
            n => Ok(Some(n as u64)),
        }
    }

    fn skip(&mut self, n: u64) -> Result<(), ShapeError> {
        let n = usize::try_from(n).map_err(|_| ShapeError::Truncated { at: self.at })?;
        self.take(n)
    }

    /// An array count of elements that decode into heap values (structs, strings).
    fn counted_array(&mut self, element_bytes_min: usize) -> Result<u64, ShapeError> {
        let count = self.array_count(element_bytes_min)?;
        self.elements += count;
        if self.elements > self.elements_max {
            return Err(ShapeError::TooManyElements {
                elements_max: self.elements_max,
            });
        }
        Ok(count)
    }

    fn array_count(&mut self, element_bytes_min: usize) -> Result<u64, ShapeError> {
        let at = self.at;
        let count = self.length(true)?.unwrap_or(0);
        let needed = count.saturating_mul(element_bytes_min.max(1) as u64);
        if needed > self.remaining() as u64 {
            return Err(ShapeError::ArrayTooLong {
                count,
                at,
                remaining: self.remaining(),
            });
        }
        Ok(count)
    }

    fn walk(&mut self, ty: Ty, depth: usize) -> Result<(), ShapeError> {
        match ty {
            Ty::Fixed(n) => self.take(n),
            Ty::Str => {
                let n = self.length(false)?;
                self.skip(n.unwrap_or(0))
            }
            Ty::Bytes => {
                let n = self.length(true)?;
                self.skip(n.unwrap_or(0))
            }
            Ty::ArrayFixed(width) => {
                let count = self.array_count(width)?;
                self.skip(count * width as u64)
            }
            Ty::ArrayStr => {
                let count = self.counted_array(if self.flexible { 1 } else { 2 })?;
                for _ in 0..count {
                    self.walk(Ty::Str, depth)?;
                }
                Ok(())
            }
            Ty::Struct(inner) => {
                if depth >= DEPTH_MAX {
                    return Err(ShapeError::TooDeep {
                        depth_max: DEPTH_MAX,
                    });
                }
                self.walk_struct(inner, depth + 1)
            }
            Ty::Array(element) => {
                if depth >= DEPTH_MAX {
                    return Err(ShapeError::TooDeep {
                        depth_max: DEPTH_MAX,
                    });
                }
                let count = self.counted_array(self.bytes_min(element))?;
                for _ in 0..count {
                    self.walk_struct(element, depth + 1)?;
                }
                Ok(())
            }
        }
    }

    fn present(&self, field: &Field) -> bool {
        (field.min..=field.max).contains(&self.version)
    }

    fn walk_struct(&mut self, s: &'static Struct, depth: usize) -> Result<(), ShapeError> {
        for field in s.fields {
            if self.present(field) {
                self.walk(field.ty, depth)?;
            }
        }
        if self.flexible {
            let count = self.uvarint()?;
            // Every tagged field takes at least 2 bytes (tag, size).
            if u64::from(count) * 2 > self.remaining() as u64 {
                return Err(ShapeError::ArrayTooLong {
                    count: count.into(),
                    at: self.at,
                    remaining: self.remaining(),
                });
            }
            for _ in 0..count {
                let tag = self.uvarint()?;
                let size = self.uvarint()? as usize;
                let end = self.at.checked_add(size).filter(|&e| e <= self.buf.len());
                let Some(end) = end else {
                    return Err(ShapeError::Truncated { at: self.at });
                };
                match s.tagged.iter().find(|(t, _)| *t == tag) {
                    None => self.at = end,
                    Some(&(_, ty)) => {
                        self.walk(ty, depth)?;
                        if self.at != end {
                            return Err(ShapeError::TaggedSize { tag, size });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The fewest bytes one encoded element of `s` can take at this version.
    fn bytes_min(&self, s: &Struct) -> usize {
        let mut n = usize::from(self.flexible);
        for field in s.fields.iter().filter(|f| self.present(f)) {
            n += match field.ty {
                Ty::Fixed(width) => width,
                Ty::Struct(inner) => self.bytes_min(inner),
                Ty::Str => {
                    if self.flexible {
                        1
                    } else {
                        2
                    }
                }
                Ty::Bytes | Ty::Array(_) | Ty::ArrayFixed(_) | Ty::ArrayStr => {
                    if self.flexible {
                        1
                    } else {
                        4
                    }
                }
            };
        }
        n
    }
}

/// Checks that `body` (the request after its header) is a structurally complete `api_key`
/// request at `version` whose arrays all fit. Returns the bytes the request occupies.
pub fn check(api_key: ApiKey, version: i16, body: &[u8]) -> Result<usize, ShapeError> {
    let s = schema(api_key).ok_or(ShapeError::NoSchema(api_key))?;
    walk(s, api_key, version, body, ARRAY_ELEMENTS_MAX)
}

/// [`check`] for a response body (after the response header), for the APIs the client uses.
pub fn check_response(api_key: ApiKey, version: i16, body: &[u8]) -> Result<usize, ShapeError> {
    let s = response_schema(api_key).ok_or(ShapeError::NoSchema(api_key))?;
    walk(s, api_key, version, body, RESPONSE_ARRAY_ELEMENTS_MAX)
}

fn walk(
    s: &'static Struct,
    api_key: ApiKey,
    version: i16,
    body: &[u8],
    elements_max: u64,
) -> Result<usize, ShapeError> {
    // Request and response bodies are flexible from the same version (request header v2),
    // even for ApiVersions, whose response header stays v0.
    let mut walker = Walker {
        buf: body,
        at: 0,
        version,
        flexible: api_key.request_header_version(version) >= 2,
        elements: 0,
        elements_max,
    };
    walker.walk_struct(s, 0)?;
    Ok(walker.at)
}
