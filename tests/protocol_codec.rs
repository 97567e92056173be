//! Request/response codecs against kafka-protocol as the oracle, for every supported API at
//! every served version.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use shoal_protocol::errors;
use shoal_protocol::request::{decode_request, RequestError};
use shoal_protocol::response::{
    encode_response, error_response, response_header_version, Response,
};
use shoal_protocol::shape;
use shoal_protocol::versions::{served, ADVERTISED};
use shoal_testkit::protocol::*;

fn served_versions() -> Vec<(ApiKey, i16)> {
    let mut out = Vec::new();
    for r in ADVERTISED {
        let (min, max) = served(r.api_key).expect("served");
        for v in min..=max {
            out.push((r.api_key, v));
        }
    }
    out
}

#[test]
fn every_request_round_trips_through_our_decoder() {
    let mut checked = 0;
    for (api, v) in served_versions() {
        let request = sample(api, v);
        let (frame, header_len) = frame(&request, v, 1234);
        let body = &frame[header_len..];
        assert_eq!(
            shape::check(api, v, body),
            Ok(body.len()),
            "{api:?} v{v}: shape walker disagrees with kafka-protocol's encoding"
        );
        let decoded = decode_request(frame.clone()).unwrap_or_else(|e| panic!("{api:?} v{v}: {e}"));
        assert_eq!(decoded.api_key, api);
        assert_eq!(decoded.version(), v);
        assert_eq!(decoded.correlation_id(), 1234);
        assert_eq!(decoded.client_id(), Some("test-client"));
        // Re-encoding what we decoded gives the same bytes: nothing lost or misread.
        let mut again = BytesMut::new();
        decoded.request.encode_body(&mut again, v).unwrap();
        assert_eq!(&again[..], body, "{api:?} v{v}: re-encoded body differs");
        assert_eq!(
            decoded.request, request,
            "{api:?} v{v}: decoded request differs"
        );
        checked += 1;
    }
    assert!(checked > 150, "only {checked} api versions checked");
}

#[test]
fn produce_records_are_zero_copy_slices_of_the_frame() {
    let request = sample(ApiKey::Produce, 9);
    let (frame, _) = frame(&request, 9, 1);
    let decoded = decode_request(frame.clone()).unwrap();
    let shoal_protocol::Request::Produce(p) = decoded.request else {
        panic!("not produce")
    };
    let records = p.topic_data[0].partition_data[0].records.clone().unwrap();
    let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    assert!(frame_range.contains(&(records.as_ptr() as usize)));
}

#[test]
fn every_truncation_of_every_request_is_an_error_not_a_panic() {
    for (api, v) in served_versions() {
        let (frame, header_len) = frame(&sample(api, v), v, 1);
        for cut in 0..frame.len() {
            let result = decode_request(frame.slice(..cut));
            // An empty-looking body can be valid for a few APIs (e.g. ApiVersions v0), so
            // only bodies that the full request needed must fail.
            if cut >= header_len && shape::check(api, v, &frame[header_len..cut]).is_ok() {
                continue;
            }
            assert!(result.is_err(), "{api:?} v{v} cut at {cut} decoded");
        }
    }
}

/// Decodes a response frame with kafka-protocol.
fn oracle_decode(frame: &BytesMut, api: ApiKey, v: i16) -> (i32, Response) {
    let mut bytes = Bytes::copy_from_slice(frame);
    let size = bytes.get_i32();
    assert_eq!(size as usize, bytes.len(), "size prefix");
    let header = ResponseHeader::decode(&mut bytes, response_header_version(api, v)).unwrap();
    let response = Response::decode_body(api, &mut bytes, v).unwrap();
    assert!(!bytes.has_remaining(), "{api:?} v{v}: trailing bytes");
    (header.correlation_id, response)
}

#[test]
fn error_responses_encode_at_every_version_and_carry_the_code() {
    for (api, v) in served_versions() {
        let request = sample(api, v);
        let response = error_response(&request, v, errors::NOT_COORDINATOR);
        let frame =
            encode_response(77, v, &response).unwrap_or_else(|e| panic!("{api:?} v{v}: {e}"));
        let (correlation_id, decoded) = oracle_decode(&frame, api, v);
        assert_eq!(correlation_id, 77);
        let text = format!("{decoded:?}");
        assert!(
            text.contains(&format!("error_code: {}", errors::NOT_COORDINATOR)),
            "{api:?} v{v}: no error code in {text}"
        );
        // Everything that was asked about is answered.
        match (&request, &decoded) {
            (shoal_protocol::Request::Produce(req), Response::Produce(resp)) => {
                assert_eq!(resp.responses.len(), req.topic_data.len());
                for t in &resp.responses {
                    assert_eq!(t.partition_responses.len(), 2);
                    assert!(t
                        .partition_responses
                        .iter()
                        .all(|p| p.error_code == errors::NOT_COORDINATOR));
                }
            }
            (shoal_protocol::Request::Fetch(req), Response::Fetch(resp)) => {
                assert_eq!(resp.responses.len(), req.topics.len());
                assert!(resp
                    .responses
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .all(|p| p.error_code == errors::NOT_COORDINATOR));
            }
            (shoal_protocol::Request::Metadata(_), Response::Metadata(resp)) => {
                assert_eq!(resp.topics.len(), 2);
                assert!(resp
                    .topics
                    .iter()
                    .all(|t| t.error_code == errors::NOT_COORDINATOR));
            }
            (shoal_protocol::Request::CreateTopics(_), Response::CreateTopics(resp)) => {
                assert_eq!(resp.topics.len(), 2);
                assert!(resp
                    .topics
                    .iter()
                    .all(|t| t.error_code == errors::NOT_COORDINATOR));
            }
            _ => {}
        }
    }
}

#[test]
fn api_versions_response_uses_header_v0_even_when_flexible() {
    let (v, body) = shoal_protocol::api_versions_response(3);
    assert_eq!(v, 3);
    let frame = encode_response(5, v, &Response::ApiVersions(body.clone())).unwrap();
    // Size, correlation id, then directly the body (no tagged-field byte of header v1).
    let mut expected = BytesMut::new();
    body.encode(&mut expected, 3).unwrap();
    assert_eq!(&frame[4..8], &5i32.to_be_bytes());
    assert_eq!(&frame[8..], &expected[..]);
    // A flexible non-ApiVersions response has header v1: one empty tagged-field byte.
    let frame = encode_response(5, 9, &Response::Metadata(MetadataResponse::default())).unwrap();
    assert_eq!(frame[8], 0);
}

#[test]
fn kip_511_unknown_api_versions_version_gets_error_35_in_v0() {
    // A future ApiVersions v9 (flexible header v2) with a body we cannot parse.
    let frame = raw_frame(ApiKey::ApiVersions, 9, b"\x07future\x021\x00");
    let err = decode_request(frame).unwrap_err();
    assert!(
        matches!(err, RequestError::UnsupportedVersion { .. }),
        "{err}"
    );
    assert_eq!(err.correlation_id(), Some(7));
    let reply = err.reply().expect("KIP-511 reply");
    let (correlation_id, response) = oracle_decode(&reply, ApiKey::ApiVersions, 0);
    assert_eq!(correlation_id, 7);
    let Response::ApiVersions(r) = response else {
        panic!()
    };
    assert_eq!(r.error_code, errors::UNSUPPORTED_VERSION);
    let av = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert_eq!((av.min_version, av.max_version), (0, 4));
    assert_eq!(r.api_keys.len(), ADVERTISED.len());
}

/// Produce v0-2 body: acks, timeout, [topic, [partition, message set]].
fn legacy_produce_body(acks: i16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&acks.to_be_bytes());
    b.extend_from_slice(&1000i32.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&5i16.to_be_bytes());
    b.extend_from_slice(b"topic");
    b.extend_from_slice(&2i32.to_be_bytes());
    for p in [0i32, 5] {
        b.extend_from_slice(&p.to_be_bytes());
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(b"old");
    }
    b
}

#[test]
fn produce_v0_to_v2_are_refused_with_unsupported_version() {
    for v in 0..=2i16 {
        let err =
            decode_request(raw_frame(ApiKey::Produce, v, &legacy_produce_body(1))).unwrap_err();
        assert!(
            matches!(err, RequestError::UnsupportedVersion { .. }),
            "{err}"
        );
        let reply = err.reply().expect("legacy produce reply");
        let mut r = Bytes::copy_from_slice(&reply);
        assert_eq!(r.get_i32() as usize, r.len());
        assert_eq!(r.get_i32(), 7, "correlation id");
        assert_eq!(r.get_i32(), 1, "topics");
        assert_eq!(r.get_i16(), 5);
        assert_eq!(&r.split_to(5)[..], b"topic");
        assert_eq!(r.get_i32(), 2, "partitions");
        for p in [0, 5] {
            assert_eq!(r.get_i32(), p);
            assert_eq!(r.get_i16(), errors::UNSUPPORTED_VERSION);
            assert_eq!(r.get_i64(), -1);
            if v >= 2 {
                assert_eq!(r.get_i64(), -1);
            }
        }
        if v >= 1 {
            assert_eq!(r.get_i32(), 0, "throttle");
        }
        assert!(!r.has_remaining());
    }
    // acks=0: the client reads no response, so none is produced.
    let err = decode_request(raw_frame(ApiKey::Produce, 2, &legacy_produce_body(0))).unwrap_err();
    assert!(err.reply().is_none());
}

#[test]
fn unknown_and_unserved_api_keys_and_versions() {
    let err = decode_request(raw_frame(ApiKey::Produce, 3, b"")).unwrap_err();
    assert!(matches!(err, RequestError::Body { .. }), "{err}");
    // SaslHandshake (17) exists in Kafka but is not served.
    let err = decode_request(raw_frame(ApiKey::SaslHandshake, 1, b"\x00\x05PLAIN")).unwrap_err();
    assert!(
        matches!(err, RequestError::UnknownApiKey { api_key: 17, .. }),
        "{err}"
    );
    let mut frame = vec![0x7f, 0x00, 0, 1, 0, 0, 0, 9];
    frame.extend_from_slice(&[0xff, 0xff]);
    let err = decode_request(Bytes::from(frame)).unwrap_err();
    assert!(
        matches!(
            err,
            RequestError::UnknownApiKey {
                api_key: 0x7f00,
                correlation_id: 9,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.reply().is_none());
    // Fetch v3 is below the served range: no answer format, close.
    let err = decode_request(raw_frame(ApiKey::Fetch, 3, b"")).unwrap_err();
    assert!(
        matches!(err, RequestError::UnsupportedVersion { .. }),
        "{err}"
    );
    assert!(err.reply().is_none());
    let err = decode_request(Bytes::from_static(b"\x00\x12\x00")).unwrap_err();
    assert!(matches!(err, RequestError::Header { .. }));
}

#[test]
fn giant_array_counts_are_rejected_before_allocation() {
    // Metadata v0: topics count i32::MAX in a 4-byte body.
    let err = decode_request(raw_frame(ApiKey::Metadata, 0, &i32::MAX.to_be_bytes())).unwrap_err();
    assert!(err.to_string().contains("cannot fit"), "{err}");
    // Metadata v12 (flexible): compact count 0xffffffff.
    let err = decode_request(raw_frame(
        ApiKey::Metadata,
        12,
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
    ))
    .unwrap_err();
    assert!(err.to_string().contains("cannot fit"), "{err}");
    // Nested: Produce v3 with one topic whose partition count is huge.
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&1i16.to_be_bytes());
    body.push(b'a');
    body.extend_from_slice(&0x4000_0000i32.to_be_bytes());
    let err = decode_request(raw_frame(ApiKey::Produce, 3, &body)).unwrap_err();
    assert!(err.to_string().contains("cannot fit"), "{err}");
    // Fetch v12 forgotten-topics partition list ([]int32) too long.
    let err = decode_request(raw_frame(
        ApiKey::Fetch,
        12,
        &[
            0, 0, 0, 0, 0, 0, 1, 0xf4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
            0xff, 0x0f,
        ],
    ))
    .unwrap_err();
    assert!(matches!(err, RequestError::Body { .. }), "{err}");
}

#[test]
fn lying_tagged_field_sizes_are_rejected() {
    // Fetch v12 with a FetchRequest tag 0 (cluster_id) whose declared size is shorter than the
    // compact string inside it.
    let request = FetchRequest::default()
        .with_max_wait_ms(1)
        .with_cluster_id(Some(s("abcdef")));
    let mut body = BytesMut::new();
    request.encode(&mut body, 12).unwrap();
    let mut body = body.to_vec();
    // Ends with: tag count 1, tag 0, size 7, len 7, "abcdef".
    let n = body.len();
    assert_eq!(&body[n - 10..n - 6], &[1, 0, 7, 7]);
    body[n - 8] = 6;
    body.pop();
    let err = decode_request(raw_frame(ApiKey::Fetch, 12, &body)).unwrap_err();
    assert!(matches!(err, RequestError::Body { .. }), "{err}");
}

#[test]
fn samples_encode_at_every_version() {
    let mut failures = Vec::new();
    for (api, v) in served_versions() {
        let mut buf = BytesMut::new();
        if let Err(e) = sample(api, v).encode_body(&mut buf, v) {
            failures.push(format!("{e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn malformed_api_versions_body_gets_invalid_request_in_v0() {
    // v3 body: client_software_name claims 9 bytes, 2 follow.
    let err = decode_request(raw_frame(ApiKey::ApiVersions, 3, b"\x0aab")).unwrap_err();
    assert!(matches!(err, RequestError::Body { .. }), "{err}");
    let reply = err.reply().expect("reply");
    let (correlation_id, response) = oracle_decode(&reply, ApiKey::ApiVersions, 0);
    assert_eq!(correlation_id, 7);
    let Response::ApiVersions(r) = response else {
        panic!()
    };
    assert_eq!(r.error_code, errors::INVALID_REQUEST);
    // Other malformed bodies get no reply: the connection closes.
    let err = decode_request(raw_frame(ApiKey::Metadata, 1, b"\x00")).unwrap_err();
    assert!(err.reply().is_none());
}

#[test]
fn element_count_is_bounded_whatever_the_frame_size() {
    // Metadata v1 with ARRAY_ELEMENTS_MAX + 1 empty topic names: 2 bytes each, structurally
    // valid, but it would decode into hundreds of MiB of structs.
    let n = shape::ARRAY_ELEMENTS_MAX as usize + 1;
    let mut body = Vec::with_capacity(4 + 2 * n + 1);
    body.extend_from_slice(&(n as i32).to_be_bytes());
    body.resize(4 + 2 * n, 0);
    let err = decode_request(raw_frame(ApiKey::Metadata, 1, &body)).unwrap_err();
    assert!(err.to_string().contains("elements"), "{err}");
    // One fewer is accepted.
    let n = n - 1;
    let mut body = Vec::new();
    body.extend_from_slice(&(n as i32).to_be_bytes());
    body.resize(4 + 2 * n, 0);
    let decoded = decode_request(raw_frame(ApiKey::Metadata, 1, &body)).unwrap();
    let shoal_protocol::Request::Metadata(m) = decoded.request else {
        panic!()
    };
    assert_eq!(m.topics.unwrap().len(), n);
}
