//! RecordBatch v2 codec against kafka-protocol's record codec as the oracle.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use shoal_protocol::errors;
use shoal_protocol::records::*;

fn new_records(n: usize) -> Vec<NewRecord> {
    (0..n)
        .map(|i| NewRecord {
            key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
            value: (i % 5 != 4).then(|| Bytes::from(vec![b'x'; i * 37 % 300])),
            headers: (0..i % 3)
                .map(|h| RecordHeader {
                    key: Bytes::from(format!("h{h}")),
                    value: (h != 1).then(|| Bytes::from(format!("v{i}-{h}"))),
                })
                .collect(),
            timestamp_ms: 1_700_000_000_000 + (i as i64 * 7919) % 5000 - 2500,
        })
        .collect()
}

#[test]
fn our_batches_decode_with_kafka_protocol() {
    let records = new_records(50);
    let batch = build_batch(
        &records,
        BatchOptions {
            base_offset: 1000,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 17,
            ..BatchOptions::default()
        },
    );
    // Our batch carries base offset 1000, which a producer may not send.
    assert_eq!(
        validate_produce_batch(&batch, 1 << 20),
        Err(RecordError::Invalid(
            "producer batches must have base offset 0"
        ))
    );
    let header = BatchHeader::parse(&batch).unwrap();
    assert_eq!(header.record_count, 50);
    assert_eq!(header.last_offset_delta, 49);
    assert_eq!(header.base_timestamp, records[0].timestamp_ms);
    assert_eq!(
        header.max_timestamp,
        records.iter().map(|r| r.timestamp_ms).max().unwrap()
    );
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert_eq!(set.records.len(), 50);
    for (i, (ours, theirs)) in records.iter().zip(&set.records).enumerate() {
        assert_eq!(theirs.offset, 1000 + i as i64);
        assert_eq!(theirs.sequence, 17 + i as i32);
        assert_eq!(theirs.producer_id, 42);
        assert_eq!(theirs.timestamp, ours.timestamp_ms);
        assert_eq!(theirs.key, ours.key);
        assert_eq!(theirs.value, ours.value);
        let headers: Vec<_> = theirs
            .headers
            .iter()
            .map(|(k, v)| (Bytes::from(k.clone()), v.clone()))
            .collect();
        let expected: Vec<_> = ours
            .headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect();
        assert_eq!(headers, expected);
    }
}

fn kp_records(n: usize) -> Vec<KpRecord> {
    new_records(n)
        .into_iter()
        .enumerate()
        .map(|(i, r)| KpRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: r.timestamp_ms,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|h| (StrBytes::from_utf8(h.key).unwrap(), h.value))
                .collect::<IndexMap<_, _>>(),
        })
        .collect()
}

#[test]
fn compressed_batches_from_kafka_protocol_decode_with_ours() {
    let expected = new_records(40);
    for compression in [
        KpCompression::None,
        KpCompression::Gzip,
        KpCompression::Snappy,
        KpCompression::Lz4,
        KpCompression::Zstd,
    ] {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &kp_records(40),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        let set = buf.freeze();
        let header = BatchHeader::parse(&set).unwrap();
        assert_eq!(
            header.attributes & ATTR_COMPRESSION_MASK,
            compression as i16
        );
        let decoded = decode_record_set(set).unwrap();
        assert_eq!(decoded.len(), 40, "{compression:?}");
        for (i, (r, e)) in decoded.iter().zip(&expected).enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.key, e.key, "{compression:?} {i}");
            assert_eq!(r.value, e.value);
            assert_eq!(r.timestamp_ms, e.timestamp_ms);
            assert_eq!(r.headers, e.headers);
        }
    }
}

#[test]
fn duplicate_header_keys_keep_order_and_values() {
    let record = NewRecord {
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: vec![
            RecordHeader {
                key: Bytes::from_static(b"trace"),
                value: Some(Bytes::from_static(b"1")),
            },
            RecordHeader {
                key: Bytes::from_static(b"trace"),
                value: None,
            },
            RecordHeader {
                key: Bytes::from_static(b"trace"),
                value: Some(Bytes::from_static(b"3")),
            },
        ],
        timestamp_ms: 5,
    };
    let batch = build_batch(std::slice::from_ref(&record), BatchOptions::default());
    let decoded = decode_record_set(batch).unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].headers, record.headers);
    assert_eq!(decoded[0].key, None);
}

#[test]
fn crc_covers_attributes_to_end_but_not_offset_or_epoch() {
    let batch = build_batch(&new_records(3), BatchOptions::default());
    verify_crc(&batch).unwrap();
    let mut stamped = batch.to_vec();
    stamp_batch(&mut stamped, 123_456, 9);
    verify_crc(&stamped).unwrap();
    let header = BatchHeader::parse(&stamped).unwrap();
    assert_eq!(
        (header.base_offset, header.partition_leader_epoch),
        (123_456, 9)
    );
    let decoded = decode_record_set(Bytes::from(stamped.clone())).unwrap();
    assert_eq!(decoded[2].offset, 123_458);
    for at in [
        OFFSET_ATTRIBUTES,
        OFFSET_RECORD_COUNT + 3,
        stamped.len() - 1,
    ] {
        let mut bad = stamped.clone();
        bad[at] ^= 0x01;
        assert!(
            matches!(verify_crc(&bad), Err(RecordError::Crc { .. })),
            "flip at {at}"
        );
        assert!(validate_produce_batch(&bad, 1 << 20).is_err());
    }
}

#[test]
fn produce_validation_rejects_what_kafka_rejects() {
    let good = build_batch(&new_records(2), BatchOptions::default()).to_vec();
    let mut bad_magic = good.clone();
    bad_magic[OFFSET_MAGIC] = 1;
    assert_eq!(
        validate_produce_batch(&bad_magic, 1 << 20),
        Err(RecordError::Magic(1))
    );
    // Two batches where one is expected.
    let mut two = good.clone();
    two.extend_from_slice(&good);
    assert!(matches!(
        validate_produce_batch(&two, 1 << 20),
        Err(RecordError::Length(_))
    ));
    assert!(matches!(
        validate_produce_batch(&good[..good.len() - 1], 1 << 20),
        Err(RecordError::Length(_))
    ));
    assert!(matches!(
        validate_produce_batch(&good[..30], 1 << 20),
        Err(RecordError::Truncated { .. })
    ));
    validate_produce_batch(&good, good.len()).unwrap();
    let err = validate_produce_batch(&good, good.len() - 1).unwrap_err();
    assert_eq!(err.error_code(), errors::MESSAGE_TOO_LARGE);
    let with = |options: BatchOptions| build_batch(&new_records(2), options).to_vec();
    let control = {
        let mut b = good.clone();
        b[OFFSET_ATTRIBUTES + 1] |= ATTR_CONTROL as u8;
        let crc = compute_crc(&b);
        b[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    };
    let idempotent_without_sequence = with(BatchOptions {
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: -1,
        ..BatchOptions::default()
    });
    for bad in [control, idempotent_without_sequence] {
        let err = validate_produce_batch(&bad, 1 << 20).unwrap_err();
        assert!(matches!(err, RecordError::Invalid(_)), "{err}");
        assert_eq!(err.error_code(), errors::INVALID_RECORD);
    }
    validate_produce_batch(
        &with(BatchOptions {
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: 0,
            ..BatchOptions::default()
        }),
        1 << 20,
    )
    .unwrap();
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    assert_eq!(
        validate_produce_batch(&bad_crc, 1 << 20)
            .unwrap_err()
            .error_code(),
        errors::CORRUPT_MESSAGE
    );
}

#[test]
fn batches_iterator_stops_at_a_partial_trailing_batch() {
    let a = build_batch(&new_records(2), BatchOptions::default());
    let b = build_batch(
        &new_records(3),
        BatchOptions {
            base_offset: 2,
            ..BatchOptions::default()
        },
    );
    let mut set = BytesMut::new();
    set.extend_from_slice(&a);
    set.extend_from_slice(&b);
    set.extend_from_slice(&b[..b.len() - 5]);
    let set = set.freeze();
    let batches: Vec<_> = Batches::new(set.clone()).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].0.base_offset, 2);
    let records = decode_record_set(set).unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(records[4].offset, 4);
}

#[test]
fn builder_size_accounting_is_exact() {
    let records = new_records(20);
    let mut builder = BatchBuilder::new(BatchOptions::default());
    let mut expected = BATCH_HEADER_BYTES;
    for r in &records {
        expected += builder.record_bytes(r);
        builder.push(r);
        assert_eq!(builder.batch_bytes(), expected);
    }
    assert_eq!(builder.finish().len(), expected);
}

#[test]
fn compressed_batches_we_build_decode_with_both_codecs() {
    let records: Vec<NewRecord> = (0..200)
        .map(|i| NewRecord {
            key: Some(Bytes::from(format!("key-{}", i % 10))),
            value: Some(Bytes::from(format!(
                "{i:08} the same words again and again"
            ))),
            headers: vec![RecordHeader {
                key: Bytes::from_static(b"h"),
                value: Some(Bytes::from_static(b"v")),
            }],
            timestamp_ms: 1_700_000_000_000 + i,
        })
        .collect();
    let plain = build_batch(&records, BatchOptions::default());
    for name in ["gzip", "snappy", "lz4", "zstd"] {
        let codec = Compression::parse(name).unwrap();
        let batch = build_batch(
            &records,
            BatchOptions {
                compression: codec,
                ..BatchOptions::default()
            },
        );
        let header = validate_produce_batch(&batch, 1 << 20).unwrap();
        assert_eq!(header.compression(), Some(codec));
        assert!(
            batch.len() < plain.len() / 2,
            "{name}: {} vs {}",
            batch.len(),
            plain.len()
        );
        let ours = decode_record_set(batch.clone()).unwrap();
        assert_eq!(ours.len(), 200);
        for (r, e) in ours.iter().zip(&records) {
            assert_eq!(
                (&r.key, &r.value, &r.headers),
                (&e.key, &e.value, &e.headers)
            );
            assert_eq!(r.timestamp_ms, e.timestamp_ms);
        }
        let theirs = RecordBatchDecoder::decode(&mut batch.clone()).unwrap();
        assert_eq!(theirs.records.len(), 200, "{name}");
        assert_eq!(theirs.records[199].value, records[199].value);
    }
    assert_eq!(Compression::parse("brotli"), None);
}
