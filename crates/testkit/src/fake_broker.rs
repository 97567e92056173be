//! A small in-process Kafka broker built from Shoal's own codecs, for client tests: one
//! thread per connection on 127.0.0.1, in-memory logs, no replication, no groups.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use shoal_client::ClientConfig;
use shoal_protocol::errors;
use shoal_protocol::fetch::{
    encode_fetch_response, FetchPartitionHead, FetchResponseHead, FetchTopicHead,
};
use shoal_protocol::frame::{split_frame, FrameError};
use shoal_protocol::records::{decode_batch, stamp_batch, validate_produce_batch, BatchHeader};
use shoal_protocol::request::decode_request_in;
use shoal_protocol::response::{encode_response, error_response, Response};
use shoal_protocol::versions::{api_versions_response_with, ApiRange, ADVERTISED};
use shoal_protocol::Request;

const REQUEST_BYTES_MAX: usize = 8 << 20;

#[derive(Default)]
pub struct State {
    /// topic -> partitions -> (base offset, batch) list.
    pub logs: BTreeMap<String, Vec<Vec<(i64, Bytes)>>>,
    /// Requests seen, by api key.
    pub seen: HashMap<i16, usize>,
    /// Versions seen, by api key.
    pub versions: HashMap<i16, std::collections::BTreeSet<i16>>,
}

impl State {
    pub fn end_offset(&self, topic: &str, partition: usize) -> i64 {
        self.logs[topic][partition].last().map_or(0, |(base, b)| {
            base + BatchHeader::parse(b).unwrap().record_count as i64
        })
    }
}

pub struct FakeBroker {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

/// Encodes `f` with [`encode_fetch_response`], record bytes copied into the gaps.
fn encode_fetch_chunked(correlation_id: i32, version: i16, f: &FetchResponse) -> BytesMut {
    let head = FetchResponseHead {
        throttle_time_ms: f.throttle_time_ms,
        error_code: f.error_code,
        session_id: f.session_id,
        topics: f
            .responses
            .iter()
            .map(|t| FetchTopicHead {
                name: t.topic.0.clone(),
                topic_id: t.topic_id,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| FetchPartitionHead {
                        partition_index: p.partition_index,
                        error_code: p.error_code,
                        high_watermark: p.high_watermark,
                        last_stable_offset: p.last_stable_offset,
                        log_start_offset: p.log_start_offset,
                        aborted_transactions: None,
                        preferred_read_replica: -1,
                        records_bytes: p.records.as_ref().map(Bytes::len),
                        ..FetchPartitionHead::default()
                    })
                    .collect(),
            })
            .collect(),
    };
    let frame = encode_fetch_response(correlation_id, version, &head).unwrap();
    frame.assemble(|ti, pi| {
        f.responses[ti].partitions[pi]
            .records
            .as_deref()
            .expect("gap only for records")
    })
}

/// A stable, non-nil topic id derived from the name (FNV-1a, 128-bit).
pub fn topic_id(name: &str) -> uuid::Uuid {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in name.bytes() {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    uuid::Uuid::from_u128(h | 1)
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl FakeBroker {
    pub fn start() -> FakeBroker {
        FakeBroker::start_with(ADVERTISED)
    }

    /// A broker that advertises and serves only `table`.
    pub fn start_with(table: &'static [ApiRange]) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, port, table, state));
            }
        });
        FakeBroker { port, state }
    }

    pub fn create_topic(&self, name: &str, partitions: usize) {
        let mut st = self.state.lock().unwrap();
        st.logs
            .insert(name.to_string(), vec![Vec::new(); partitions]);
    }

    /// Every stored batch of `topic`, by partition.
    pub fn batches(&self, topic: &str) -> Vec<Vec<Bytes>> {
        let st = self.state.lock().unwrap();
        st.logs[topic]
            .iter()
            .map(|p| p.iter().map(|(_, b)| b.clone()).collect())
            .collect()
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn config(&self) -> ClientConfig {
        ClientConfig {
            brokers: vec![format!("127.0.0.1:{}", self.port)],
            socket_timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(1),
            ..ClientConfig::default()
        }
    }
}

fn serve(mut stream: TcpStream, port: u16, table: &'static [ApiRange], state: Arc<Mutex<State>>) {
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match split_frame(&mut buf, REQUEST_BYTES_MAX) {
            Err(FrameError::Negative { .. } | FrameError::TooLarge { .. }) => return,
            Ok(Some(frame)) => {
                let reply = match decode_request_in(table, frame) {
                    Ok(req) => {
                        {
                            let mut st = state.lock().unwrap();
                            *st.seen.entry(req.api_key as i16).or_insert(0) += 1;
                            st.versions
                                .entry(req.api_key as i16)
                                .or_default()
                                .insert(req.version());
                        }
                        if !req.expects_response() {
                            handle(&req.request, req.version(), port, table, &state);
                            continue;
                        }
                        let response = handle(&req.request, req.version(), port, table, &state);
                        let version = match &response {
                            Response::ApiVersions(r) if r.error_code != 0 => 0,
                            _ => req.version(),
                        };
                        match &response {
                            // Fetch goes through the chunked (zero-copy path) encoder.
                            Response::Fetch(f) => {
                                encode_fetch_chunked(req.correlation_id(), version, f)
                            }
                            _ => encode_response(req.correlation_id(), version, &response).unwrap(),
                        }
                    }
                    Err(e) => match e.reply_in(table) {
                        Some(reply) => reply,
                        None => {
                            eprintln!("fake broker: closing after {e}");
                            return;
                        }
                    },
                };
                if stream.write_all(&reply).is_err() {
                    return;
                }
            }
            Ok(None) => match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

fn handle(
    request: &Request,
    version: i16,
    port: u16,
    table: &'static [ApiRange],
    state: &Mutex<State>,
) -> Response {
    let mut st = state.lock().unwrap();
    match request {
        Request::ApiVersions(_) => Response::ApiVersions(api_versions_response_with(table, version).1),
        Request::Metadata(r) => {
            let names: Vec<String> = match &r.topics {
                None => st.logs.keys().cloned().collect(),
                Some(ts) => ts
                    .iter()
                    .map(|t| t.name.as_ref().unwrap().0.to_string())
                    .collect(),
            };
            let topics = names
                .iter()
                .map(|n| match st.logs.get(n) {
                    None => metadata_response::MetadataResponseTopic::default()
                        .with_name(Some(TopicName(sb(n))))
                        .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION),
                    Some(parts) => metadata_response::MetadataResponseTopic::default()
                        .with_name(Some(TopicName(sb(n))))
                        .with_topic_id(topic_id(n))
                        .with_partitions(
                            (0..parts.len() as i32)
                                .map(|p| {
                                    metadata_response::MetadataResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_leader_id(BrokerId(1))
                                        .with_replica_nodes(vec![BrokerId(1)])
                                        .with_isr_nodes(vec![BrokerId(1)])
                                })
                                .collect(),
                        ),
                })
                .collect();
            Response::Metadata(
                MetadataResponse::default()
                    .with_brokers(vec![metadata_response::MetadataResponseBroker::default()
                        .with_node_id(BrokerId(1))
                        .with_host(sb("127.0.0.1"))
                        .with_port(port as i32)])
                    .with_cluster_id(Some(sb("fake")))
                    .with_controller_id(BrokerId(1))
                    .with_topics(topics),
            )
        }
        Request::CreateTopics(r) => Response::CreateTopics(
            CreateTopicsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        let name = t.name.0.to_string();
                        let exists = st.logs.contains_key(&name);
                        let code = match (exists, t.num_partitions) {
                            (true, _) => errors::TOPIC_ALREADY_EXISTS,
                            (false, 0) => errors::INVALID_PARTITIONS,
                            (false, n) => {
                                if !r.validate_only {
                                    st.logs.insert(name, vec![Vec::new(); n.max(1) as usize]);
                                }
                                errors::NONE
                            }
                        };
                        create_topics_response::CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Request::DeleteTopics(r) => Response::DeleteTopics(
            DeleteTopicsResponse::default().with_responses(
                r.topic_names
                    .iter()
                    .map(|n| {
                        let code = if st.logs.remove(&n.0.to_string()).is_some() {
                            errors::NONE
                        } else {
                            errors::UNKNOWN_TOPIC_OR_PARTITION
                        };
                        delete_topics_response::DeletableTopicResult::default()
                            .with_name(Some(n.clone()))
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Request::Produce(r) => {
            let mut responses = Vec::new();
            for t in &r.topic_data {
                let name = t.name.0.to_string();
                let mut parts = Vec::new();
                for p in &t.partition_data {
                    let mut out = produce_response::PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_log_append_time_ms(-1);
                    let batch = p.records.clone().unwrap_or_default();
                    match (st.logs.contains_key(&name), validate_produce_batch(&batch, 1 << 20)) {
                        (false, _) => out.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION,
                        (true, Err(_)) => out.error_code = errors::CORRUPT_MESSAGE,
                        (true, Ok(_)) => {
                            let base = st.end_offset(&name, p.index as usize);
                            let mut stamped = batch.to_vec();
                            stamp_batch(&mut stamped, base, 0);
                            st.logs.get_mut(&name).unwrap()[p.index as usize]
                                .push((base, Bytes::from(stamped)));
                            out.base_offset = base;
                        }
                    }
                    parts.push(out);
                }
                responses.push(
                    produce_response::TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_partition_responses(parts),
                );
            }
            Response::Produce(ProduceResponse::default().with_responses(responses))
        }
        Request::Fetch(r) => {
            let mut responses = Vec::new();
            for t in &r.topics {
                // Fetch v13+ names topics by id only.
                let name = if t.topic.0.is_empty() {
                    match st.logs.keys().find(|n| topic_id(n) == t.topic_id) {
                        Some(n) => n.clone(),
                        None => {
                            responses.push(
                                fetch_response::FetchableTopicResponse::default()
                                    .with_topic_id(t.topic_id)
                                    .with_partitions(
                                        t.partitions
                                            .iter()
                                            .map(|p| {
                                                fetch_response::PartitionData::default()
                                                    .with_partition_index(p.partition)
                                                    .with_error_code(errors::UNKNOWN_TOPIC_ID)
                                            })
                                            .collect(),
                                    ),
                            );
                            continue;
                        }
                    }
                } else {
                    t.topic.0.to_string()
                };
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let log = &st.logs[&name][p.partition as usize];
                        let mut set = BytesMut::new();
                        for (base, batch) in log {
                            let count = BatchHeader::parse(batch)
                                .unwrap()
                                .record_count as i64;
                            if base + count > p.fetch_offset {
                                set.extend_from_slice(batch);
                            }
                        }
                        fetch_response::PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_high_watermark(st.end_offset(&name, p.partition as usize))
                            .with_log_start_offset(0)
                            .with_records(Some(set.freeze()))
                    })
                    .collect();
                responses.push(
                    fetch_response::FetchableTopicResponse::default()
                        .with_topic(t.topic.clone())
                        .with_topic_id(t.topic_id)
                        .with_partitions(parts),
                );
            }
            Response::Fetch(FetchResponse::default().with_responses(responses))
        }
        Request::ListOffsets(r) => Response::ListOffsets(
            ListOffsetsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        list_offsets_response::ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        let end = st.end_offset(&t.name.0, p.partition_index as usize);
                                        let (offset, timestamp) = match p.timestamp {
                                            -2 => (0, -1),
                                            -1 => (end, -1),
                                            ts => st.logs[t.name.0.as_str()][p.partition_index as usize]
                                                .iter()
                                                .flat_map(|(_, b)| decode_batch(b).unwrap().1)
                                                .find(|r| r.timestamp_ms >= ts)
                                                .map_or((-1, -1), |r| (r.offset, r.timestamp_ms)),
                                        };
                                        list_offsets_response::ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_offset(offset)
                                            .with_timestamp(timestamp)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        Request::DescribeConfigs(r) => Response::DescribeConfigs(
            DescribeConfigsResponse::default().with_results(
                r.resources
                    .iter()
                    .map(|res| {
                        let known = res.resource_type != 2 || st.logs.contains_key(res.resource_name.as_str());
                        describe_configs_response::DescribeConfigsResult::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(if known { 0 } else { errors::UNKNOWN_TOPIC_OR_PARTITION })
                            .with_configs(if known {
                                vec![describe_configs_response::DescribeConfigsResourceResult::default()
                                    .with_name(sb("retention.ms"))
                                    .with_value(Some(sb("604800000")))
                                    .with_config_source(5)]
                            } else {
                                vec![]
                            })
                    })
                    .collect(),
            ),
        ),
        Request::FindCoordinator(_) => Response::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_node_id(BrokerId(1))
                .with_host(sb("127.0.0.1"))
                .with_port(port as i32),
        ),
        Request::InitProducerId(_) => Response::InitProducerId(
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(1000))
                .with_producer_epoch(0),
        ),
        other => error_response(other, version, errors::UNSUPPORTED_VERSION),
    }
}
