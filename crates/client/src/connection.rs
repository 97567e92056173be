//! One broker connection: blocking socket with timeouts, ApiVersions negotiation, and
//! request/response round trips checked by correlation id.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{ClientConfig, ClientError, Result};
use shoal_protocol::errors;
use shoal_protocol::frame::FrameError;
use shoal_protocol::request::Request;
use shoal_protocol::response::{response_header_version, DecodeError, Response};
use shoal_protocol::shape;

/// Initial capacity of a response buffer.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The versions this client speaks, per API: `(min, max)`. Maxima stay at versions that name
/// topics (Produce/Fetch v13+ use topic ids only).
pub const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
];

/// Group membership and admin APIs (`GroupConsumer`, `group seek|delete`). Their responses
/// have no schema in `protocol::shape` yet, so they are decoded without the array-count check.
pub const GROUP_CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::JoinGroup, 1, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::DeleteGroups, 0, 2),
];

/// The client's own range for `api_key`.
pub fn client_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    CLIENT_VERSIONS
        .iter()
        .chain(GROUP_CLIENT_VERSIONS)
        .find(|(k, _, _)| *k == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// A connected broker.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    addr: String,
    client_id: StrBytes,
    socket_timeout: Duration,
    response_bytes_max: usize,
    correlation_id: i32,
    /// The broker's advertised ranges.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `addr` (`host:port`) and negotiates API versions.
    pub fn connect(addr: &str, config: &ClientConfig) -> Result<Connection> {
        let io = |source| ClientError::Io {
            broker: addr.to_string(),
            source,
        };
        let mut last = None;
        let mut stream = None;
        for sock_addr in addr.to_socket_addrs().map_err(io)? {
            match TcpStream::connect_timeout(&sock_addr, config.socket_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(stream) = stream else {
            return Err(match last {
                Some(e) if is_timeout(&e) => ClientError::Timeout {
                    broker: addr.to_string(),
                    operation: "connect",
                },
                Some(e) => io(e),
                None => io(std::io::Error::new(
                    ErrorKind::NotFound,
                    "address resolves to nothing",
                )),
            });
        };
        stream.set_nodelay(true).map_err(io)?;
        stream
            .set_write_timeout(Some(config.socket_timeout))
            .map_err(io)?;
        let mut conn = Connection {
            stream,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(config.client_id.clone()),
            socket_timeout: config.socket_timeout,
            response_bytes_max: config.response_bytes_max,
            correlation_id: 0,
            versions: HashMap::new(),
        };
        conn.negotiate()?;
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The broker's advertised range for `api_key`.
    pub fn broker_versions(&self, api_key: ApiKey) -> Option<(i16, i16)> {
        self.versions.get(&(api_key as i16)).copied()
    }

    /// ApiVersions at our highest version; on UNSUPPORTED_VERSION retry at v0 (KIP-511).
    fn negotiate(&mut self) -> Result<()> {
        let (_, max) = client_versions(ApiKey::ApiVersions).expect("ApiVersions range");
        let request = Request::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("shoal"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION"))),
        );
        let mut response = self.round_trip(&request, max, Duration::ZERO)?;
        if let Some(Response::ApiVersions(r)) = &response {
            if r.error_code == errors::UNSUPPORTED_VERSION {
                response = self.round_trip(&request, 0, Duration::ZERO)?;
            }
        }
        let Some(Response::ApiVersions(r)) = response else {
            return Err(ClientError::Protocol("no ApiVersions response".into()));
        };
        super::check(r.error_code, || format!("{}: ApiVersions", self.addr), None)?;
        self.versions = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The version to use for `api_key`: the highest both sides support.
    pub fn version_for(&self, api_key: ApiKey) -> Result<i16> {
        let (client_min, client_max) = client_versions(api_key)
            .ok_or_else(|| ClientError::Invalid(format!("client does not speak {api_key:?}")))?;
        let broker_range = self.broker_versions(api_key);
        let unsupported = || ClientError::Unsupported {
            broker: self.addr.clone(),
            api_key,
            broker_range,
            client_min,
            client_max,
        };
        let (broker_min, broker_max) = broker_range.ok_or_else(unsupported)?;
        let version = client_max.min(broker_max);
        if version < client_min.max(broker_min) {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// Sends `request` at the negotiated version and returns its response. `server_wait` is
    /// how long the broker may legitimately hold the request (added to the read timeout).
    pub fn send(&mut self, request: &Request, server_wait: Duration) -> Result<(i16, Response)> {
        let version = self.version_for(request.api_key())?;
        let response = self.round_trip(request, version, server_wait)?;
        let response = response.ok_or_else(|| ClientError::Protocol("no response".into()))?;
        Ok((version, response))
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub fn send_no_response(&mut self, request: &Request) -> Result<i16> {
        let version = self.version_for(request.api_key())?;
        self.round_trip(request, version, Duration::ZERO)?;
        Ok(version)
    }

    fn round_trip(
        &mut self,
        request: &Request,
        version: i16,
        server_wait: Duration,
    ) -> Result<Option<Response>> {
        let api_key = request.api_key();
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0; 4]);
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut buf, api_key.request_header_version(version))
            .map_err(|e| ClientError::Protocol(format!("request header: {e}")))?;
        request.encode_body(&mut buf, version)?;
        let size = buf.len() - 4;
        if size > i32::MAX as usize {
            return Err(ClientError::Invalid(format!("request of {size} bytes")));
        }
        buf[..4].copy_from_slice(&(size as i32).to_be_bytes());
        self.write_all(&buf)?;
        let expects_response = !matches!(request, Request::Produce(p) if p.acks == 0);
        if !expects_response {
            return Ok(None);
        }
        let mut frame = self.read_frame(self.socket_timeout + server_wait)?;
        let header = ResponseHeader::decode(&mut frame, response_header_version(api_key, version))
            .map_err(|e| ClientError::Protocol(format!("{}: response header: {e}", self.addr)))?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::Correlation {
                broker: self.addr.clone(),
                expected: correlation_id,
                got: header.correlation_id,
            });
        }
        if api_key == ApiKey::ApiVersions
            && frame.len() >= 2
            && i16::from_be_bytes([frame[0], frame[1]]) == errors::UNSUPPORTED_VERSION
        {
            // KIP-511 says v0 encoding; some brokers (librdkafka's mock) answer a flexible
            // request in a flexible layout. Only the error code matters: the caller retries.
            let parsed = shape::check_response(api_key, 0, &frame)
                .ok()
                .and_then(|_| Response::decode_body(api_key, &mut frame.clone(), 0).ok());
            return Ok(Some(parsed.unwrap_or_else(|| {
                Response::ApiVersions(
                    kafka_protocol::messages::ApiVersionsResponse::default()
                        .with_error_code(errors::UNSUPPORTED_VERSION),
                )
            })));
        }
        // Array counts are checked before kafka-protocol preallocates from them.
        let unchecked = GROUP_CLIENT_VERSIONS.iter().any(|(k, _, _)| *k == api_key);
        match shape::check_response(api_key, version, &frame) {
            Ok(_) => {}
            Err(shape::ShapeError::NoSchema(_)) if unchecked => {}
            Err(e) => {
                return Err(DecodeError {
                    api_key,
                    version,
                    reason: e.to_string(),
                }
                .into())
            }
        }
        Ok(Some(Response::decode_body(api_key, &mut frame, version)?))
    }

    fn io_error(&self, source: std::io::Error, operation: &'static str) -> ClientError {
        if is_timeout(&source) {
            ClientError::Timeout {
                broker: self.addr.clone(),
                operation,
            }
        } else if source.kind() == ErrorKind::UnexpectedEof {
            ClientError::Closed {
                broker: self.addr.clone(),
            }
        } else {
            ClientError::Io {
                broker: self.addr.clone(),
                source,
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.stream
            .write_all(buf)
            .map_err(|e| self.io_error(e, "write"))
    }

    fn read_frame(&mut self, timeout: Duration) -> Result<Bytes> {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|e| self.io_error(e, "read"))?;
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .map_err(|e| self.io_error(e, "read"))?;
        let size = i32::from_be_bytes(prefix);
        if size < 0 {
            return Err(ClientError::Frame {
                broker: self.addr.clone(),
                source: FrameError::Negative { size },
            });
        }
        let size = size as usize;
        if size > self.response_bytes_max {
            return Err(ClientError::Frame {
                broker: self.addr.clone(),
                source: FrameError::TooLarge {
                    size,
                    request_bytes_max: self.response_bytes_max,
                },
            });
        }
        // Grow with the bytes that actually arrive, not with what the prefix claims.
        let mut body = Vec::with_capacity(size.min(READ_CHUNK_BYTES));
        (&mut self.stream)
            .take(size as u64)
            .read_to_end(&mut body)
            .map_err(|e| self.io_error(e, "read"))?;
        if body.len() < size {
            return Err(ClientError::Closed {
                broker: self.addr.clone(),
            });
        }
        Ok(Bytes::from(body))
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}
