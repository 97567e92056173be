//! Bad input (issue 3, acceptance 4): garbage frames, frames over the size limit or with a
//! negative length, a Produce with a wrong CRC, an unknown API key, unsupported versions. Each
//! gets the right error code or a closed connection, nothing is appended, and the broker keeps
//! serving well-behaved clients throughout: one on its own connection in a background thread
//! for the whole test, and checks interleaved after every bad request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::Decodable;
use rand::{Rng, SeedableRng};
use shoal_testkit::raw::{self, Outcome, RawConn};
use shoal_testkit::Broker;

const CORRUPT_MESSAGE: i16 = 2;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_RECORD: i16 = 87;

/// The topic bad requests aim at: it must stay empty.
const TARGET: &str = "bad-target";
/// The topic well-behaved clients write to.
const GOOD: &str = "good";

/// A broker, a target topic, and well-behaved clients that must keep working.
struct Harness {
    broker: Broker,
    good: RawConn,
    /// Records the interleaved good client produced to GOOD partition 0.
    good_produced: i64,
    stop: Arc<AtomicBool>,
    background: Option<thread::JoinHandle<Result<u64, String>>>,
    background_progress: Arc<Mutex<u64>>,
}

impl Harness {
    fn new() -> Harness {
        let broker = Broker::start();
        let mut admin = RawConn::connect(&broker.addr());
        admin.create_topic(TARGET, 1);
        admin.create_topic(GOOD, 2);
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Mutex::new(0u64));
        let background = {
            let addr = broker.addr();
            let stop = stop.clone();
            let progress = progress.clone();
            thread::spawn(move || background_client(&addr, &stop, &progress))
        };
        let mut harness = Harness {
            good: RawConn::connect(&broker.addr()),
            broker,
            good_produced: 0,
            stop,
            background: Some(background),
            background_progress: progress,
        };
        harness.check_good("before any bad input");
        harness
    }

    /// The persistent good connection and a fresh one both work, and the broker is alive.
    fn check_good(&mut self, after: &str) {
        let addr = self.broker.addr();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.check_good_inner(after, &addr)
        }));
        if let Err(panic) = result {
            self.broker
                .fail_with(&format!("well-behaved clients after {after}"), &*panic);
        }
    }

    fn check_good_inner(&mut self, after: &str, addr: &str) {
        let versions = self.good.api_versions();
        assert_eq!(versions.error_code, 0, "ApiVersions after {after}");
        let value = format!("good-{}", self.good_produced);
        let (error, offset) =
            self.good
                .produce(GOOD, 0, &[raw::record(Some(b"k"), value.as_bytes(), 1_000)]);
        assert_eq!(error, 0, "good produce after {after}");
        assert_eq!(
            offset, self.good_produced,
            "good produce after {after}: offsets must continue"
        );
        self.good_produced += 1;
        let records = self.good.fetch_all(GOOD, 0, offset);
        assert_eq!(records.len(), 1, "good fetch after {after}");
        assert_eq!(records[0].value.as_deref(), Some(value.as_bytes()));
        let mut fresh = RawConn::connect(addr);
        assert_eq!(
            fresh.api_versions().error_code,
            0,
            "fresh ApiVersions after {after}"
        );
        let md = fresh.metadata(&[TARGET]);
        assert!(
            md.topics.iter().any(|t| t.error_code == 0),
            "fresh Metadata after {after}: {md:?}"
        );
    }

    /// Nothing from the bad requests was appended to the target topic.
    fn assert_target_empty(&mut self, after: &str) {
        let (error, latest) = self.good.list_offset(TARGET, 0, -1);
        assert_eq!(error, 0, "ListOffsets latest after {after}");
        assert_eq!(latest, 0, "{after}: bad input was appended to {TARGET}");
    }

    fn finish(mut self, after: &str) {
        self.check_good(after);
        self.assert_target_empty(after);
        self.stop.store(true, Ordering::SeqCst);
        let result = self
            .background
            .take()
            .unwrap()
            .join()
            .expect("background client panicked");
        match result {
            Ok(rounds) => assert!(rounds >= 1, "background client made no progress"),
            Err(e) => panic!(
                "background client failed during the bad input (after {} good rounds): {e}",
                self.background_progress.lock().unwrap()
            ),
        }
        self.broker.assert_running();
    }
}

/// Produce + fetch round trips on GOOD partition 1 until told to stop; every one must succeed
/// with consecutive offsets.
fn background_client(addr: &str, stop: &AtomicBool, progress: &Mutex<u64>) -> Result<u64, String> {
    let mut conn = RawConn::connect(addr);
    let mut rounds = 0u64;
    // At least one round even if the test is quick; bounded by the test's own duration.
    while rounds == 0 || !stop.load(Ordering::SeqCst) {
        let value = format!("bg-{rounds}");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (error, offset) =
                conn.produce(GOOD, 1, &[raw::record(None, value.as_bytes(), 2_000)]);
            if error != 0 {
                return Err(format!("produce error {error}"));
            }
            if offset != rounds as i64 {
                return Err(format!("produce offset {offset}, expected {rounds}"));
            }
            let records = conn.fetch_all(GOOD, 1, offset);
            if records.len() != 1 || records[0].value.as_deref() != Some(value.as_bytes()) {
                return Err(format!("fetch at {offset} returned {records:?}"));
            }
            Ok(())
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("round {rounds}: {e}")),
            Err(panic) => {
                let msg = shoal_testkit::panic_message(&*panic);
                return Err(format!("round {rounds}: {msg}"));
            }
        }
        rounds += 1;
        *progress.lock().unwrap() = rounds;
    }
    Ok(rounds)
}

fn header(conn: &mut RawConn, api_key: i16, api_version: i16) -> BytesMut {
    let id = conn.next_correlation_id();
    raw::raw_header_v1(api_key, api_version, id, "shoal-bad-input")
}

/// Sends a frame that must make the broker close the connection.
fn expect_close_after_frame(broker_addr: &str, what: &str, frame: &[u8]) {
    let mut conn = RawConn::connect(broker_addr);
    // A broker that closes while we still write is fine: the read below sees the close.
    let _ = conn.write_raw(frame);
    conn.expect_closed(what);
}

fn length_prefixed(len: i32, payload: &[u8]) -> Vec<u8> {
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn garbage_frames_close_the_connection() {
    let mut h = Harness::new();
    let addr = h.broker.addr();

    expect_close_after_frame(&addr, "empty frame (length 0)", &length_prefixed(0, &[]));
    h.check_good("empty frame");
    expect_close_after_frame(
        &addr,
        "frame shorter than a request header",
        &length_prefixed(3, &[0x00, 0x03, 0x00]),
    );
    h.check_good("short frame");

    // A known API and version, then garbage where the body should be.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5100a1);
    for (api_key, version, name) in [
        (3i16, 12i16, "Metadata v12"),
        (0, 9, "Produce v9"),
        (1, 12, "Fetch v12"),
    ] {
        let mut conn = RawConn::connect(&addr);
        let mut frame = header(&mut conn, api_key, version);
        if version >= 9 {
            frame.put_u8(0); // empty tagged fields of request header v2
        }
        let garbage: Vec<u8> = (0..64).map(|_| rng.gen::<u8>() | 0x80).collect();
        frame.put_slice(&garbage);
        let _ = conn.write_frame(&frame);
        conn.expect_closed(&format!("{name} header with a garbage body"));
        h.check_good(&format!("{name} with a garbage body"));
    }

    // Random frames: 2-byte API keys drawn outside the known range, so each is garbage.
    for i in 0..16 {
        let len = rng.gen_range(1..256usize);
        let mut payload: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if payload.len() >= 2 {
            payload[0] |= 0x80; // negative API key
        }
        expect_close_after_frame(
            &addr,
            &format!("random frame {i} ({len} bytes)"),
            &length_prefixed(len as i32, &payload),
        );
    }
    h.check_good("random frames");

    // A frame cut short by the client going away must not disturb anything.
    {
        let mut conn = RawConn::connect(&addr);
        let _ = conn.write_raw(&length_prefixed(100, &[0u8; 10]));
    }
    h.check_good("half a frame then disconnect");
    h.finish("garbage frames");
}

#[test]
fn frame_length_over_the_limit_or_negative_closes_the_connection() {
    let mut h = Harness::new();
    let addr = h.broker.addr();
    for (len, what) in [
        (i32::MAX, "frame length i32::MAX"),
        (1 << 30, "frame length 1 GiB"),
        (-1, "frame length -1"),
        (i32::MIN, "frame length i32::MIN"),
    ] {
        // A few body bytes follow: the broker must decide on the length alone, not wait.
        expect_close_after_frame(&addr, what, &length_prefixed(len, &[0u8; 16]));
        h.check_good(what);
    }
    h.finish("bad frame lengths");
}

#[test]
fn produce_with_wrong_crc_is_corrupt_message() {
    let mut h = Harness::new();
    let addr = h.broker.addr();
    let records: Vec<_> = (0..5)
        .map(|i| {
            raw::record(
                Some(b"key"),
                format!("value-{i}").as_bytes(),
                1_700_000_000_000 + i,
            )
        })
        .collect();
    let batch = raw::encode_batch(&records);
    assert!(
        raw::batch_headers(&batch)[0].crc_ok,
        "the test's own batch must be valid"
    );

    let mut conn = RawConn::connect(&addr);
    // 1. The CRC field itself is wrong.
    let mut bad_crc = batch.to_vec();
    bad_crc[17] ^= 0xff;
    let (error, _) = raw::single_produce_result(
        &conn.produce_batch(TARGET, 0, Bytes::from(bad_crc)),
        TARGET,
        0,
    );
    assert_eq!(error, CORRUPT_MESSAGE, "Produce with a flipped CRC field");
    h.check_good("wrong CRC field");

    // 2. A record byte changed after the CRC was computed (same connection: it stays usable).
    let mut bad_payload = batch.to_vec();
    let last = bad_payload.len() - 2;
    bad_payload[last] ^= 0x01;
    let (error, _) = raw::single_produce_result(
        &conn.produce_batch(TARGET, 0, Bytes::from(bad_payload)),
        TARGET,
        0,
    );
    assert_eq!(
        error, CORRUPT_MESSAGE,
        "Produce with a corrupted record body"
    );
    h.check_good("corrupted record body");

    // 3. Header fields inconsistent with the records, with a correct CRC: RecordCount 6 for 5
    //    records. Kafka rejects it (CORRUPT_MESSAGE or INVALID_RECORD).
    let mut bad_count = batch.to_vec();
    bad_count[57..61].copy_from_slice(&6i32.to_be_bytes());
    let crc = crc32c::crc32c(&bad_count[21..]);
    bad_count[17..21].copy_from_slice(&crc.to_be_bytes());
    let (error, _) = raw::single_produce_result(
        &conn.produce_batch(TARGET, 0, Bytes::from(bad_count)),
        TARGET,
        0,
    );
    assert!(
        error == CORRUPT_MESSAGE || error == INVALID_RECORD,
        "Produce with RecordCount 6 for 5 records: error {error}, expected {CORRUPT_MESSAGE} or {INVALID_RECORD}"
    );
    h.check_good("record count mismatch");
    h.assert_target_empty("bad batches");

    // The connection that sent the bad batches still produces correctly.
    let (error, offset) =
        raw::single_produce_result(&conn.produce_batch(TARGET, 0, batch), TARGET, 0);
    assert_eq!((error, offset), (0, 0), "valid Produce after the bad ones");
    let fetched = conn.fetch_all(TARGET, 0, 0);
    assert_eq!(fetched.len(), 5);
    for (i, r) in fetched.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.value.as_deref(), Some(format!("value-{i}").as_bytes()));
        assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
    }
    // Remove it again from the accounting: the target now legitimately holds 5 records.
    let (_, latest) = conn.list_offset(TARGET, 0, -1);
    assert_eq!(latest, 5);
    h.check_good("valid produce");
    h.stop.store(true, Ordering::SeqCst);
    let result = h
        .background
        .take()
        .unwrap()
        .join()
        .expect("background client panicked");
    result.unwrap_or_else(|e| panic!("background client failed: {e}"));
    h.broker.assert_running();
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let mut h = Harness::new();
    let addr = h.broker.addr();
    for api_key in [9999i16, 32767, -1, 1000] {
        let mut conn = RawConn::connect(&addr);
        let frame = header(&mut conn, api_key, 0);
        let _ = conn.write_frame(&frame);
        conn.expect_closed(&format!("unknown API key {api_key}"));
        h.check_good(&format!("unknown API key {api_key}"));
    }
    h.finish("unknown API keys");
}

#[test]
fn api_versions_v99_gets_unsupported_version_and_the_list() {
    let mut h = Harness::new();
    let mut conn = RawConn::connect(&h.broker.addr());
    let id = conn.next_correlation_id();
    // A client from the future: request header v2 (flexible), some v99 body.
    let mut frame = raw::raw_header_v1(18, 99, id, "future-client");
    frame.put_u8(0); // header tagged fields
    frame.put_slice(&[0x07, b'f', b'u', b't', b'u', b'r', b'e', 0x02, b'9', 0x00]);
    conn.write_frame(&frame).expect("write ApiVersions v99");
    let bytes = match conn.read_outcome("ApiVersions v99") {
        Outcome::Response(bytes) => bytes,
        Outcome::Closed => panic!("ApiVersions v99: broker closed instead of answering (KIP-511)"),
    };
    // KIP-511: response header v0, body in v0 encoding.
    let mut body = bytes.clone();
    let correlation = i32::from_be_bytes(bytes[..4].try_into().unwrap());
    assert_eq!(correlation, id, "ApiVersions v99 correlation id");
    let _ = bytes::Buf::get_i32(&mut body);
    let response = ApiVersionsResponse::decode(&mut body, 0).unwrap_or_else(|e| {
        panic!("ApiVersions v99 response is not v0-encoded: {e}: {bytes:02x?}")
    });
    assert_eq!(
        response.error_code, UNSUPPORTED_VERSION,
        "ApiVersions v99 error code"
    );
    let api_versions = response
        .api_keys
        .iter()
        .find(|k| k.api_key == 18)
        .unwrap_or_else(|| panic!("ApiVersions v99: list lacks ApiVersions itself: {response:?}"));
    assert!(
        api_versions.min_version == 0 && api_versions.max_version >= 3,
        "ApiVersions range {api_versions:?}"
    );
    for key in [0i16, 1, 2, 3, 19, 22] {
        assert!(
            response.api_keys.iter().any(|k| k.api_key == key),
            "ApiVersions v99: list lacks API key {key}"
        );
    }
    // Like librdkafka, retry on the same connection with a supported version.
    assert_eq!(
        conn.api_versions().error_code,
        0,
        "ApiVersions v3 after v99"
    );
    h.check_good("ApiVersions v99");
    h.finish("ApiVersions v99");
}

#[test]
fn produce_v2_is_rejected_and_appends_nothing() {
    let mut h = Harness::new();
    let mut conn = RawConn::connect(&h.broker.addr());
    let id = conn.next_correlation_id();

    // Legacy message set v1 with one message (magic 1), CRC-32 over magic..end.
    let mut message = BytesMut::new();
    message.put_i8(1); // magic
    message.put_i8(0); // attributes
    message.put_i64(1_700_000_000_000); // timestamp
    message.put_i32(-1); // null key
    message.put_i32(5);
    message.put_slice(b"old-v");
    let crc = raw::crc32_ieee(&message);
    let mut message_set = BytesMut::new();
    message_set.put_i64(0); // offset
    message_set.put_i32(4 + message.len() as i32);
    message_set.put_u32(crc);
    message_set.put_slice(&message);

    let mut frame = raw::raw_header_v1(0, 2, id, "old-client");
    frame.put_i16(1); // acks
    frame.put_i32(10_000); // timeout
    frame.put_i32(1); // one topic
    frame.put_i16(TARGET.len() as i16);
    frame.put_slice(TARGET.as_bytes());
    frame.put_i32(1); // one partition
    frame.put_i32(0);
    frame.put_i32(message_set.len() as i32);
    frame.put_slice(&message_set);
    let _ = conn.write_frame(&frame);

    match conn.read_outcome("Produce v2") {
        Outcome::Closed => {}
        Outcome::Response(bytes) => {
            // Produce v2 response: header v0, [topic [partition error base_offset log_append_time]] throttle.
            let mut b = bytes.clone();
            use bytes::Buf;
            assert_eq!(b.get_i32(), id, "Produce v2 correlation id");
            let topics = b.get_i32();
            assert_eq!(topics, 1, "Produce v2 response topics: {bytes:02x?}");
            let name_len = b.get_i16() as usize;
            let name = b.copy_to_bytes(name_len);
            assert_eq!(&name[..], TARGET.as_bytes());
            assert_eq!(b.get_i32(), 1, "Produce v2 response partitions");
            assert_eq!(b.get_i32(), 0, "partition index");
            let error = b.get_i16();
            assert_eq!(
                error, UNSUPPORTED_VERSION,
                "Produce v2 partition error code"
            );
        }
    }
    h.check_good("Produce v2");
    h.assert_target_empty("Produce v2");
    h.finish("Produce v2");
}

/// Sanity of the oracle used above: our raw client's v2 batch survives the crate's decoder.
#[test]
fn raw_batch_encoding_round_trips_offline() {
    let records: Vec<_> = (0..3)
        .map(|i| raw::record(None, format!("v{i}").as_bytes(), 10 + i))
        .collect();
    let batch = raw::encode_batch(&records);
    let headers = raw::batch_headers(&batch);
    assert_eq!(headers.len(), 1);
    assert!(headers[0].crc_ok);
    assert_eq!(headers[0].record_count, 3);
    assert_eq!(headers[0].last_offset_delta, 2);
    assert_eq!(headers[0].magic, 2);
    let decoded = raw::decode_records(batch);
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded[2].value.as_deref(), Some(&b"v2"[..]));
}
