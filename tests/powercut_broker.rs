//! Power-cut tests of a real broker (issue 15): `shoal serve` (the release binary) with its data
//! dir on `shoal-powerfs` (crates/powerfs), which keeps unsynced file data and directory entries
//! in a volatile cache. While a librdkafka producer (acks=all, idempotence) is mid-stream, the
//! power is cut under the running broker (the fs drops what is not durable and fails every later
//! operation), the broker is SIGKILLed and restarted on the remounted fs. Every acknowledged record must be there at its offset; the topics (ids, partitions,
//! cluster id) survive; the same producer carries on after the restart without duplicates or
//! sequence gaps (its idempotence state survived), and a new producer gets a fresh id.
//!
//! The control: the same with topic config `flush.ms=1000` (acknowledge after the write, sync
//! later) must lose acknowledged records. If it does not, the fs is not modelling a volatile
//! cache and the control fails saying so.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;
use rdkafka::Offset;
use shoal_testkit::powerfs::PowerFs;
use shoal_testkit::raw::RawConn;
use shoal_testkit::rdk;
use shoal_testkit::{
    high_watermarks, make_records, stored_batches, Broker, BrokerOptions, Consumed, Produced,
};

const PARTITIONS: i32 = 4;

/// (cluster id, topic id, partition count) as Metadata reports them.
fn topic_metadata(addr: &str, topic: &str) -> (String, String, usize) {
    let (t, md) = shoal_testkit::topic_metadata(addr, topic);
    (
        format!("{:?}", md.cluster_id),
        t.topic_id.to_string(),
        t.partitions.len(),
    )
}

/// The whole topic up to the high watermarks.
fn consume_all(addr: &str, topic: &str, hws: &[i64]) -> HashMap<(i32, i64), Consumed> {
    let total: i64 = hws.iter().sum();
    rdk::consume(
        addr,
        topic,
        hws.len() as i32,
        Offset::Beginning,
        total as usize,
    )
    .into_iter()
    .map(|c| ((c.partition, c.offset), c))
    .collect()
}

/// Acknowledged records missing or different at their acknowledged (partition, offset).
fn lost_acks(
    records: &[Produced],
    delivered: &HashMap<usize, (i32, i64)>,
    at: &HashMap<(i32, i64), Consumed>,
) -> Vec<String> {
    let mut lost = Vec::new();
    for (seq, (partition, offset)) in delivered {
        let r = &records[*seq];
        match at.get(&(*partition, *offset)) {
            None => lost.push(format!("seq {seq} at {partition}/{offset} is gone")),
            Some(c) if c.value != r.value || c.key.as_deref() != Some(&r.key[..]) => lost.push(
                format!("seq {seq} at {partition}/{offset} holds another record"),
            ),
            Some(_) => {}
        }
    }
    lost.sort();
    lost
}

/// A broker on a fresh power-cut fs (data dir created and synced like a provisioned disk).
fn broker_on(fs: &PowerFs) -> Broker {
    let data = fs.path().join("data");
    std::fs::create_dir(&data).unwrap();
    fs.sync_dir(fs.path());
    Broker::start_with(BrokerOptions {
        data_dir: Some(data),
        ..BrokerOptions::default()
    })
}

fn idempotent_producer(addr: &str) -> rdkafka::producer::BaseProducer<rdk::Reports> {
    rdk::producer(
        addr,
        &[
            ("enable.idempotence", "true"),
            // Long enough to ride out kill + cut + restart: in-flight batches are retried.
            ("message.timeout.ms", "60000"),
            ("linger.ms", "2"),
            // Batches well under segment.bytes, many per segment.
            ("batch.size", "16384"),
        ],
    )
}

#[test]
fn acked_records_producer_state_and_topics_survive_sigkill_plus_power_cut() {
    let started = Instant::now();
    // A 1 ms flush latency, about this machine's disk: syncs take long enough that a cut
    // finds written but unsynced data (and so any ack that ran ahead of its sync).
    let fs = PowerFs::mount_with(Duration::from_millis(1));
    let mut broker = broker_on(&fs);
    let addr = broker.addr();
    let topic = "durable";
    // Small segments: the run crosses rolls (index files, producer snapshots, dir syncs).
    broker.create_topic_with(topic, PARTITIONS, &["segment.bytes=131072"]);
    broker.create_topic("empty-survivor", 3);
    let before = topic_metadata(&addr, topic);
    let empty_before = topic_metadata(&addr, "empty-survivor");

    let records = make_records(16_000, "powercut");
    let (phase1, rest) = records.split_at(4_000);
    let producer = idempotent_producer(&addr);
    let (delivered1, failed) = rdk::produce(&producer, topic, phase1);
    assert!(
        failed.is_empty(),
        "phase 1 failures: {:?}",
        &failed[..failed.len().min(3)]
    );

    // Phase 2: the same producer keeps sending; SIGKILL + power cut mid-stream, restart; the
    // producer retries what was in flight against the restarted broker.
    let (delivered2, failed2, cut) = std::thread::scope(|s| {
        let sender = s.spawn(|| rdk::produce(&producer, topic, rest));
        // The moment: as soon as 3,000 phase-2 acks are in (acks, not the high watermark,
        // which only moves after a sync: an ack given before its sync must be catchable).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let acked = producer.context().delivered.lock().unwrap().len();
            if acked >= phase1.len() + 3_000 || sender.is_finished() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "phase 2 made no progress in 60 s: {acked} acks"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        // Power cut under the running broker (every later fs operation fails), then SIGKILL.
        let cut = fs.power_off();
        broker.kill();
        fs.power_on();
        broker.restart();
        let (d, f) = sender.join().expect("producer thread");
        (d, f, cut)
    });
    eprintln!("cut: {}", cut.line);

    // Topics and cluster identity survived the cut.
    assert_eq!(
        topic_metadata(&addr, topic),
        before,
        "{topic} metadata after the cut"
    );
    assert_eq!(
        topic_metadata(&addr, "empty-survivor"),
        empty_before,
        "empty topic after the cut"
    );

    let hws = high_watermarks(&addr, topic, PARTITIONS);
    let at = consume_all(&addr, topic, &hws);
    let mut delivered = delivered1.clone();
    delivered.extend(delivered2.iter().map(|(k, v)| (*k, *v)));
    let lost = lost_acks(&records, &delivered, &at);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged records lost by the power cut, e.g. {:?}",
        lost.len(),
        delivered.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        failed2.is_empty(),
        "the idempotent producer failed after the restart (its state should have survived): {:?}",
        &failed2[..failed2.len().min(3)]
    );
    assert_eq!(
        at.len(),
        records.len(),
        "every record exactly once (idempotent retries after the restart deduplicated)"
    );
    // One producer id, gapless sequences per partition: nothing was written twice and the
    // broker accepted the producer's sequence numbers after the restart.
    let batches = stored_batches(&addr, topic, PARTITIONS);
    shoal_testkit::check_idempotent_batches(&batches);
    let old_pid = batches[0].1.producer_id;
    drop(producer);

    // Producer ids are never handed out twice, also across a power cut.
    let fresh = idempotent_producer(&addr);
    let more = make_records(100, "after-cut");
    let (d, f) = rdk::produce(&fresh, "empty-survivor", &more);
    assert!(f.is_empty() && d.len() == more.len(), "{f:?}");
    fresh.flush(Duration::from_secs(10)).unwrap();
    let new_pid = stored_batches(&addr, "empty-survivor", 3)[0].1.producer_id;
    assert!(
        new_pid > old_pid,
        "new producer id {new_pid} after the cut, old {old_pid}"
    );
    eprintln!(
        "{} acknowledged records survived SIGKILL + power cut; {:?}; powerfs {}",
        delivered.len(),
        started.elapsed(),
        fs.stats()
    );
}

#[test]
fn control_flush_ms_1000_must_lose_acknowledged_records() {
    let fs = PowerFs::mount();
    let mut broker = broker_on(&fs);
    let addr = broker.addr();
    let topic = "lazy";
    broker.create_topic_with(topic, PARTITIONS, &["flush.ms=1000"]);
    let records = make_records(3_000, "control");
    let (first, burst) = records.split_at(2_500);
    let producer = rdk::producer(&addr, &[("enable.idempotence", "true")]);
    let (mut delivered, failed) = rdk::produce(&producer, topic, first);
    assert!(failed.is_empty(), "{failed:?}");
    // A burst acknowledged within milliseconds, then SIGKILL and the power cut at once: with
    // flush.ms=1000 these acks came before any sync.
    let (d, failed) = rdk::produce(&producer, topic, burst);
    assert!(failed.is_empty(), "{failed:?}");
    delivered.extend(d);
    let cut = fs.power_off();
    broker.kill();
    fs.power_on();
    drop(producer);
    broker.restart();
    let hws = high_watermarks(&addr, topic, PARTITIONS);
    let at = consume_all(&addr, topic, &hws);
    let lost = lost_acks(&records, &delivered, &at);
    eprintln!(
        "control: {} of {} acknowledged records lost with flush.ms=1000 (cut: {})",
        lost.len(),
        delivered.len(),
        cut.line
    );
    assert!(
        !lost.is_empty(),
        "the control lost nothing: with flush.ms=1000 records are acknowledged before they are \
         synced, so a power cut right after the acks must lose some. The power-cut fs is not \
         doing its job (cut: {})",
        cut.line
    );
}

#[test]
fn cluster_identity_survives_a_power_cut_before_any_topic() {
    // The broker creates its data dir and `meta/` itself; nothing else syncs their parents.
    let fs = PowerFs::mount();
    let mut broker = Broker::start_with(BrokerOptions {
        data_dir: Some(fs.path().join("fresh-data")),
        ..BrokerOptions::default()
    });
    let cluster_id = |addr: &str| format!("{:?}", RawConn::connect(addr).metadata(&[]).cluster_id);
    let before = cluster_id(&broker.addr());
    let cut = fs.power_off();
    broker.kill();
    fs.power_on();
    broker.restart();
    assert_eq!(
        cluster_id(&broker.addr()),
        before,
        "cluster id changed across a power cut (cut: {})",
        cut.line
    );
}
