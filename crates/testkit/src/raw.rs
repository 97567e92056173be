//! A minimal blocking Kafka wire client for tests that must control every byte: requests are
//! encoded with the `kafka-protocol` crate (or by hand where the crate refuses, e.g. removed
//! versions), responses decoded with it. Every read is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Bound for a response to arrive (or the connection to close).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest response frame this client accepts.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;
pub const LIST_OFFSETS_VERSION: i16 = 7;
pub const METADATA_VERSION: i16 = 12;
pub const API_VERSIONS_VERSION: i16 = 3;

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// What became of a connection after a request the broker should reject.
#[derive(Debug)]
pub enum Outcome {
    /// EOF or reset: the broker closed the connection.
    Closed,
    /// A response frame arrived (its bytes, after the length prefix).
    Response(Bytes),
}

pub struct RawConn {
    stream: TcpStream,
    next_correlation_id: i32,
    pub client_id: String,
}

impl RawConn {
    pub fn connect(addr: &str) -> RawConn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(RESPONSE_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(RESPONSE_TIMEOUT)).unwrap();
        RawConn {
            stream,
            next_correlation_id: 1,
            client_id: "shoal-raw-test".to_string(),
        }
    }

    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }

    /// Writes raw bytes; an error (the broker already closed) is returned, not a panic.
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes `payload` with its i32 length prefix.
    pub fn write_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = Vec::with_capacity(4 + payload.len());
        frame.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        frame.extend_from_slice(payload);
        self.write_raw(&frame)
    }

    /// Reads one frame, or reports that the connection closed. Panics if neither happens
    /// within `RESPONSE_TIMEOUT`.
    pub fn read_outcome(&mut self, what: &str) -> Outcome {
        let mut len = [0u8; 4];
        if read_exact_or_closed(&mut self.stream, &mut len, what).is_none() {
            return Outcome::Closed;
        }
        let len = i32::from_be_bytes(len);
        assert!(
            len >= 4 && (len as usize) <= RESPONSE_BYTES_MAX,
            "{what}: response frame length {len} out of range"
        );
        let mut body = vec![0u8; len as usize];
        match read_exact_or_closed(&mut self.stream, &mut body, what) {
            None => panic!("{what}: connection closed in the middle of a {len}-byte response"),
            Some(()) => Outcome::Response(Bytes::from(body)),
        }
    }

    /// Asserts the broker closes the connection (EOF or reset) and sends nothing.
    pub fn expect_closed(&mut self, what: &str) {
        match self.read_outcome(what) {
            Outcome::Closed => {}
            Outcome::Response(bytes) => panic!(
                "{what}: expected the broker to close the connection, got a {}-byte response: {:02x?}",
                bytes.len(),
                &bytes[..bytes.len().min(64)]
            ),
        }
    }

    /// Encodes header + body of `req` at `version`.
    pub fn encode_request<R: Request>(&mut self, version: i16, req: &R) -> (i32, BytesMut) {
        let correlation_id = self.next_correlation_id();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, R::header_version(version))
            .expect("encode request header");
        req.encode(&mut buf, version).expect("encode request body");
        (correlation_id, buf)
    }

    /// Sends `req` and decodes its response (header version from the crate: v0 for ApiVersions).
    pub fn request<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let what = format!("{:?} v{version}", ApiKey::try_from(R::KEY).unwrap());
        let (correlation_id, payload) = self.encode_request(version, req);
        self.write_frame(&payload)
            .unwrap_or_else(|e| panic!("{what}: write: {e}"));
        let bytes = match self.read_outcome(&what) {
            Outcome::Response(bytes) => bytes,
            Outcome::Closed => panic!("{what}: broker closed the connection instead of answering"),
        };
        decode_response::<R::Response>(&what, bytes, version, correlation_id)
    }

    pub fn api_versions(&mut self) -> ApiVersionsResponse {
        self.request(
            API_VERSIONS_VERSION,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("shoal-raw-test"))
                .with_client_software_version(StrBytes::from_static_str("0.1")),
        )
    }

    pub fn metadata(&mut self, topics: &[&str]) -> MetadataResponse {
        let req = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(topic_name(t)))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        self.request(METADATA_VERSION, &req)
    }

    /// Produce one batch (already encoded) to one partition with acks=all.
    pub fn produce_batch(&mut self, topic: &str, partition: i32, batch: Bytes) -> ProduceResponse {
        let req = produce_request(topic, partition, batch);
        self.request(PRODUCE_VERSION, &req)
    }

    /// Produce records with `acks` waiting at most `timeout_ms`; returns (error_code,
    /// base_offset) of the partition (acks=0: no response, (0, -1)).
    pub fn produce_acks(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[Record],
        acks: i16,
        timeout_ms: i32,
    ) -> (i16, i64) {
        let req = produce_request(topic, partition, encode_batch(records))
            .with_acks(acks)
            .with_timeout_ms(timeout_ms);
        let response = self.request(PRODUCE_VERSION, &req);
        single_produce_result(&response, topic, partition)
    }

    /// Produce records; returns (error_code, base_offset) of the partition.
    pub fn produce(&mut self, topic: &str, partition: i32, records: &[Record]) -> (i16, i64) {
        let response = self.produce_batch(topic, partition, encode_batch(records));
        single_produce_result(&response, topic, partition)
    }

    pub fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> FetchResponse {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(8 * 1024 * 1024)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(4 * 1024 * 1024)])]);
        self.request(FETCH_VERSION, &req)
    }

    /// Fetches every record of a partition from `offset` up to the high watermark.
    pub fn fetch_all(&mut self, topic: &str, partition: i32, mut offset: i64) -> Vec<Record> {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let response = self.fetch(topic, partition, offset);
            let data = single_fetch_partition(&response, topic, partition);
            assert_eq!(
                data.error_code, 0,
                "fetch {topic}/{partition}@{offset}: error {}",
                data.error_code
            );
            let records = decode_records(data.records.clone().unwrap_or_default());
            let records: Vec<Record> = records.into_iter().filter(|r| r.offset >= offset).collect();
            if let Some(last) = records.last() {
                offset = last.offset + 1;
            }
            out.extend(records);
            if offset >= data.high_watermark {
                return out;
            }
        }
        panic!("fetch_all {topic}/{partition}: no progress after 10000 fetches (at {offset})");
    }

    /// One CreateTopics v5 request (replication factor 1, 10 s timeout), answered by this
    /// connection's broker itself; its response as it came.
    pub fn create_topics_v5(
        &mut self,
        topic: &str,
        partitions: i32,
    ) -> kafka_protocol::messages::CreateTopicsResponse {
        use kafka_protocol::messages::create_topics_request::CreatableTopic;
        use kafka_protocol::messages::CreateTopicsRequest;
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        self.request(5, &req)
    }

    /// CreateTopics (v5, replication factor 1), then a bounded wait until Metadata shows a
    /// leader for every partition. Panics on any error.
    pub fn create_topic(&mut self, topic: &str, partitions: i32) {
        let response = self.create_topics_v5(topic, partitions);
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic)
            .unwrap_or_else(|| panic!("CreateTopics: no result for {topic}: {response:?}"));
        assert_eq!(
            result.error_code, 0,
            "CreateTopics {topic}: error {} {:?}",
            result.error_code, result.error_message
        );
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        loop {
            let md = self.metadata(&[topic]);
            let ready = md.topics.iter().any(|t| {
                t.error_code == 0
                    && t.partitions.len() == partitions as usize
                    && t.partitions
                        .iter()
                        .all(|p| p.error_code == 0 && p.leader_id.0 >= 0)
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} has no leader for all {partitions} partitions within {RESPONSE_TIMEOUT:?}: {md:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// ListOffsets for one partition; `timestamp` -1 = latest, -2 = earliest.
    pub fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> (i16, i64) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        let response: ListOffsetsResponse = self.request(LIST_OFFSETS_VERSION, &req);
        let t = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic)
            .unwrap_or_else(|| panic!("ListOffsets: no topic {topic} in {response:?}"));
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)
            .unwrap_or_else(|| panic!("ListOffsets: no partition {partition} in {response:?}"));
        (p.error_code, p.offset)
    }
}

/// Reads exactly `buf.len()` bytes; `None` if the peer closed (EOF/reset) before the first byte.
fn read_exact_or_closed(stream: &mut TcpStream, buf: &mut [u8], what: &str) -> Option<()> {
    let deadline = Instant::now() + RESPONSE_TIMEOUT;
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return None,
            Ok(0) => panic!(
                "{what}: connection closed after {filled} of {} bytes",
                buf.len()
            ),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                ) && filled == 0 =>
            {
                return None
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "{what}: the broker neither answered nor closed the connection within {RESPONSE_TIMEOUT:?}"
                )
            }
            Err(e) => panic!("{what}: read: {e}"),
        }
        if Instant::now() > deadline {
            panic!("{what}: no complete response within {RESPONSE_TIMEOUT:?}");
        }
    }
    Some(())
}

pub fn decode_response<T: Decodable + HeaderVersion>(
    what: &str,
    mut bytes: Bytes,
    version: i16,
    correlation_id: i32,
) -> T {
    let header = ResponseHeader::decode(&mut bytes, T::header_version(version))
        .unwrap_or_else(|e| panic!("{what}: decode response header: {e}"));
    assert_eq!(
        header.correlation_id, correlation_id,
        "{what}: response correlation id"
    );
    let body = T::decode(&mut bytes, version)
        .unwrap_or_else(|e| panic!("{what}: decode response body: {e}"));
    assert!(
        !bytes.has_remaining(),
        "{what}: {} trailing bytes after the response body",
        bytes.remaining()
    );
    body
}

pub fn produce_request(topic: &str, partition: i32, batch: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

pub fn single_produce_result(
    response: &ProduceResponse,
    topic: &str,
    partition: i32,
) -> (i16, i64) {
    let t = response
        .responses
        .iter()
        .find(|t| t.name.0.as_str() == topic)
        .unwrap_or_else(|| panic!("Produce: no topic {topic} in {response:?}"));
    let p = t
        .partition_responses
        .iter()
        .find(|p| p.index == partition)
        .unwrap_or_else(|| panic!("Produce: no partition {partition} in {response:?}"));
    (p.error_code, p.base_offset)
}

pub fn single_fetch_partition<'a>(
    response: &'a FetchResponse,
    topic: &str,
    partition: i32,
) -> &'a kafka_protocol::messages::fetch_response::PartitionData {
    assert_eq!(
        response.error_code, 0,
        "Fetch: top-level error {}",
        response.error_code
    );
    let t = response
        .responses
        .iter()
        .find(|t| t.topic.0.as_str() == topic)
        .unwrap_or_else(|| panic!("Fetch: no topic {topic} in response"));
    t.partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .unwrap_or_else(|| panic!("Fetch: no partition {partition} in response"))
}

/// A plain record (no producer id) for `encode_batch`.
pub fn record(key: Option<&[u8]>, value: &[u8], timestamp: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: key.map(Bytes::copy_from_slice),
        value: Some(Bytes::copy_from_slice(value)),
        headers: Default::default(),
    }
}

/// One uncompressed v2 batch with offsets 0..n.
pub fn encode_batch(records: &[Record]) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset: i as i64,
            // The crate keeps records in one batch only while offset - sequence is constant.
            sequence: i as i32,
            ..r.clone()
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    // No producer id: BaseSequence -1, as real clients send it; CRC-32C over attributes..end.
    buf[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = crc32c::crc32c(&buf[21..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    buf.freeze()
}

pub fn decode_records(mut bytes: Bytes) -> Vec<Record> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decode fetched record batches");
    sets.into_iter().flat_map(|s| s.records).collect()
}

/// The fixed-size header fields of one v2 batch as stored by the broker.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub length: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
    /// CRC-32C over attributes..end matches `crc`.
    pub crc_ok: bool,
}

impl BatchHeader {
    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes & 0x7
    }
}

/// Walks the batches of a fetched record set (a trailing partial batch is allowed, as in Kafka).
pub fn batch_headers(records: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while records.len() - at >= 61 {
        let b = &records[at..];
        let length = i32::from_be_bytes(b[8..12].try_into().unwrap());
        assert!(
            length >= 49,
            "batch at byte {at}: length {length} too small"
        );
        let total = 12 + length as usize;
        if b.len() < total {
            break;
        }
        let crc = u32::from_be_bytes(b[17..21].try_into().unwrap());
        out.push(BatchHeader {
            base_offset: i64::from_be_bytes(b[0..8].try_into().unwrap()),
            length,
            magic: b[16] as i8,
            crc,
            attributes: i16::from_be_bytes(b[21..23].try_into().unwrap()),
            last_offset_delta: i32::from_be_bytes(b[23..27].try_into().unwrap()),
            producer_id: i64::from_be_bytes(b[43..51].try_into().unwrap()),
            producer_epoch: i16::from_be_bytes(b[51..53].try_into().unwrap()),
            base_sequence: i32::from_be_bytes(b[53..57].try_into().unwrap()),
            record_count: i32::from_be_bytes(b[57..61].try_into().unwrap()),
            crc_ok: crc32c::crc32c(&b[21..total]) == crc,
        });
        at += total;
    }
    out
}

/// A request header (v1: key, version, correlation id, INT16 client id) encoded by hand, for
/// versions and keys the crate refuses to encode.
pub fn raw_header_v1(
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: &str,
) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i16(api_key);
    buf.put_i16(api_version);
    buf.put_i32(correlation_id);
    buf.put_i16(client_id.len() as i16);
    buf.put_slice(client_id.as_bytes());
    buf
}

/// CRC-32 (IEEE), for the legacy message format v1 built by hand.
pub fn crc32_ieee(data: &[u8]) -> u32 {
    kafka_protocol::records::IEEE.checksum(data)
}
