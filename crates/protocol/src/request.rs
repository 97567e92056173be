//! Request decoding: header (v1, or v2 for flexible versions), then the body of one of the
//! supported APIs. Decoding starts from the frame's `Bytes`, so `bytes` fields (record sets,
//! group metadata) are zero-copy slices of the frame.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::response::{self, EncodeError};
use crate::shape;
use crate::versions::{self, ApiRange};

/// Bytes of the fixed part of every request header: api key, version, correlation id.
pub const HEADER_FIXED_BYTES: usize = 8;

macro_rules! define_request {
    ($($variant:ident: $req:ident, $resp:ident;)*) => {
        /// A decoded request body, one variant per supported API.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $($variant($req),)*
        }

        impl Request {
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $(Request::$variant(_) => ApiKey::$variant,)*
                }
            }

            /// Decodes the body of `api_key` at `version` (which the caller has range-checked).
            fn decode_body(api_key: ApiKey, body: &mut Bytes, version: i16) -> Option<Result<Request, String>> {
                Some(match api_key {
                    $(ApiKey::$variant => $req::decode(body, version).map(Request::$variant).map_err(|e| e.to_string()),)*
                    _ => return None,
                })
            }

            /// Encodes the body (no header) at `version`; used by clients and tests.
            pub fn encode_body(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {
                use kafka_protocol::protocol::Encodable;
                let result = match self {
                    $(Request::$variant(r) => r.encode(buf, version),)*
                };
                result.map_err(|e| EncodeError { api_key: self.api_key(), version, reason: e.to_string() })
            }
        }
    };
}
with_apis!(define_request);

/// A request with its header.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub request: Request,
}

impl DecodedRequest {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }

    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }

    pub fn client_id(&self) -> Option<&str> {
        self.header.client_id.as_deref()
    }

    /// False for Produce with `acks=0`: the client expects no response at all.
    pub fn expects_response(&self) -> bool {
        !matches!(&self.request, Request::Produce(p) if p.acks == 0)
    }
}

/// Why a frame could not be turned into a [`DecodedRequest`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// Too short, or the header itself is malformed: close the connection.
    #[error("malformed request header: {reason}")]
    Header { reason: String },
    /// An API key Shoal does not serve (unknown to Kafka, or not advertised). Kafka closes the
    /// connection; there is no response format to answer in.
    #[error("unsupported api key {api_key} (v{api_version}, correlation id {correlation_id})")]
    UnknownApiKey {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    /// A served API at a version outside the served range. [`RequestError::reply`] gives the
    /// answer where one exists (ApiVersions per KIP-511, Produce v0-2); otherwise close.
    #[error("unsupported version {} of {api_key:?}", header.request_api_version)]
    UnsupportedVersion {
        header: RequestHeader,
        api_key: ApiKey,
        /// The undecoded body.
        body: Bytes,
    },
    /// The body does not decode at the requested version: close the connection.
    #[error("malformed {api_key:?} v{} body: {reason}", header.request_api_version)]
    Body {
        header: RequestHeader,
        api_key: ApiKey,
        reason: String,
    },
}

impl RequestError {
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            RequestError::Header { .. } => None,
            RequestError::UnknownApiKey { correlation_id, .. } => Some(*correlation_id),
            RequestError::UnsupportedVersion { header, .. } | RequestError::Body { header, .. } => {
                Some(header.correlation_id)
            }
        }
    }

    /// The complete response frame (size prefix included) to send before carrying on, or
    /// `None` when the connection should be closed instead.
    pub fn reply(&self) -> Option<BytesMut> {
        self.reply_in(versions::ADVERTISED)
    }

    /// [`RequestError::reply`] for a request decoded with [`decode_request_in`]`(table, ..)`.
    pub fn reply_in(&self, table: &[ApiRange]) -> Option<BytesMut> {
        match self {
            RequestError::UnsupportedVersion {
                header,
                api_key: ApiKey::ApiVersions,
                ..
            } => {
                // KIP-511: error 35 and our list, encoded as v0.
                let body = kafka_protocol::messages::ApiVersionsResponse::default()
                    .with_error_code(crate::errors::UNSUPPORTED_VERSION)
                    .with_api_keys(versions::api_version_list(table));
                response::encode_response(
                    header.correlation_id,
                    0,
                    &response::Response::ApiVersions(body),
                )
                .ok()
            }
            RequestError::UnsupportedVersion {
                header,
                api_key: ApiKey::Produce,
                body,
            } if (0..=versions::PRODUCE_REFUSED_MAX).contains(&header.request_api_version) => {
                let legacy = decode_legacy_produce(body.clone()).ok()?;
                if legacy.acks == 0 {
                    return None;
                }
                Some(response::encode_legacy_produce_error(
                    header.correlation_id,
                    header.request_api_version,
                    &legacy,
                    crate::errors::UNSUPPORTED_VERSION,
                ))
            }
            // KIP-511: an ApiVersions body that does not parse gets INVALID_REQUEST, in v0.
            RequestError::Body {
                header,
                api_key: ApiKey::ApiVersions,
                ..
            } => {
                let body = kafka_protocol::messages::ApiVersionsResponse::default()
                    .with_error_code(crate::errors::INVALID_REQUEST)
                    .with_api_keys(versions::api_version_list(table));
                response::encode_response(
                    header.correlation_id,
                    0,
                    &response::Response::ApiVersions(body),
                )
                .ok()
            }
            _ => None,
        }
    }
}

/// Decodes a frame (without its size prefix) against the advertised table.
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, RequestError> {
    decode_request_in(versions::ADVERTISED, frame)
}

/// Decodes a frame against a custom advertised table.
pub fn decode_request_in(
    table: &[ApiRange],
    mut frame: Bytes,
) -> Result<DecodedRequest, RequestError> {
    if frame.len() < HEADER_FIXED_BYTES {
        return Err(RequestError::Header {
            reason: format!("{} bytes is shorter than a request header", frame.len()),
        });
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let unknown = || RequestError::UnknownApiKey {
        api_key: api_key_raw,
        api_version,
        correlation_id,
    };
    let api_key = ApiKey::try_from(api_key_raw).map_err(|_| unknown())?;
    if versions::advertised_in(table, api_key).is_none() {
        return Err(unknown());
    }
    // The header version depends only on whether `api_version` is flexible, which is also
    // defined for versions we do not serve (KIP-511 needs the header of any ApiVersions).
    let header_version = api_key.request_header_version(api_version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| RequestError::Header {
            reason: format!("{api_key:?} v{api_version}: {e}"),
        })?;
    debug_assert_eq!(header.request_api_key, api_key_raw);
    let served = versions::served_in(table, api_key);
    if !served.is_some_and(|(min, max)| (min..=max).contains(&api_version)) {
        return Err(RequestError::UnsupportedVersion {
            header,
            api_key,
            body: frame,
        });
    }
    if let Err(reason) = shape::check(api_key, api_version, &frame) {
        return Err(RequestError::Body {
            header,
            api_key,
            reason: reason.to_string(),
        });
    }
    let request = match Request::decode_body(api_key, &mut frame, api_version) {
        Some(Ok(request)) => request,
        Some(Err(e)) => {
            return Err(RequestError::Body {
                header,
                api_key,
                reason: e,
            })
        }
        None => return Err(unknown()),
    };
    Ok(DecodedRequest {
        header,
        api_key,
        request,
    })
}

/// The parts of a Produce v0-2 request needed to answer it with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyProduce {
    pub acks: i16,
    pub topics: Vec<(StrBytes, Vec<i32>)>,
}

/// Produce v0-2 body: acks i16, timeout i32, [topic string, [partition i32, records bytes]].
pub fn decode_legacy_produce(mut body: Bytes) -> Result<LegacyProduce, String> {
    fn need(body: &Bytes, n: usize) -> Result<(), String> {
        if body.remaining() < n {
            return Err(format!(
                "truncated: need {n} bytes, have {}",
                body.remaining()
            ));
        }
        Ok(())
    }
    fn count(body: &mut Bytes, element_bytes_min: usize) -> Result<usize, String> {
        need(body, 4)?;
        let n = body.get_i32();
        if n < 0 || (n as usize).saturating_mul(element_bytes_min) > body.remaining() {
            return Err(format!(
                "array count {n} does not fit in {} bytes",
                body.remaining()
            ));
        }
        Ok(n as usize)
    }
    need(&body, 6)?;
    let acks = body.get_i16();
    let _timeout_ms = body.get_i32();
    let topic_count = count(&mut body, 2 + 4)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        need(&body, 2)?;
        let len = body.get_i16();
        if len < 0 {
            return Err("null topic name".into());
        }
        need(&body, len as usize)?;
        let name = StrBytes::from_utf8(body.split_to(len as usize)).map_err(|e| e.to_string())?;
        let partition_count = count(&mut body, 4 + 4)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            need(&body, 8)?;
            partitions.push(body.get_i32());
            let size = body.get_i32();
            if size > 0 {
                need(&body, size as usize)?;
                body.advance(size as usize);
            }
        }
        topics.push((name, partitions));
    }
    Ok(LegacyProduce { acks, topics })
}
