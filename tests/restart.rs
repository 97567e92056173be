//! Restart (issue 3, acceptance 3): records produced with acks=all and acknowledged survive a
//! SIGKILL of the broker; after a restart on the same data dir they are all consumable at the
//! offsets the acknowledgements gave, topics keep their partitions, and offsets continue.
//! Also: SIGTERM shuts down cleanly and loses nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;
use rdkafka::Offset;
use shoal_testkit::rdk;
use shoal_testkit::{high_watermarks, make_records, wait_for, Broker, Consumed, Produced};

const PARTITIONS: i32 = 4;

fn partition_count(addr: &str, topic: &str) -> usize {
    shoal_testkit::topic_metadata(addr, topic)
        .0
        .partitions
        .len()
}

/// Every acknowledged record is at its acknowledged (partition, offset), intact.
fn check_acked(
    records: &[Produced],
    delivered: &HashMap<usize, (i32, i64)>,
    at: &HashMap<(i32, i64), &Consumed>,
) {
    for (seq, (partition, offset)) in delivered {
        let r = &records[*seq];
        let c = at.get(&(*partition, *offset)).unwrap_or_else(|| {
            panic!(
                "acknowledged record seq {seq} at {partition}/{offset} is gone after the restart"
            )
        });
        assert_eq!(
            c.value, r.value,
            "record at acknowledged {partition}/{offset}"
        );
        assert_eq!(c.key.as_deref(), Some(&r.key[..]));
        assert_eq!(c.headers, r.headers);
        assert_eq!(c.timestamp, r.timestamp);
    }
}

/// Consumes the whole topic (exactly up to the high watermarks); offsets contiguous from 0.
fn consume_all(addr: &str, topic: &str, hws: &[i64]) -> Vec<Consumed> {
    let total: i64 = hws.iter().sum();
    let consumed = rdk::consume(
        addr,
        topic,
        hws.len() as i32,
        Offset::Beginning,
        total as usize,
    );
    let mut per_partition: HashMap<i32, Vec<i64>> = HashMap::new();
    for c in &consumed {
        per_partition.entry(c.partition).or_default().push(c.offset);
    }
    for (p, hw) in hws.iter().enumerate() {
        let mut offsets = per_partition.remove(&(p as i32)).unwrap_or_default();
        offsets.sort();
        assert_eq!(
            offsets,
            (0..*hw).collect::<Vec<_>>(),
            "partition {p}: offsets must be exactly 0..{hw}"
        );
    }
    consumed
}

#[test]
fn acked_records_survive_sigkill_and_offsets_continue() {
    let mut broker = Broker::start();
    let addr = broker.addr();
    let topic = "durable";
    rdk::create_topic(&addr, topic, PARTITIONS);
    rdk::create_topic(&addr, "empty-survivor", 3);

    // Phase 1: everything acknowledged before the kill.
    let records = make_records(25_000, "restart");
    let (phase1, rest) = records.split_at(5_000);
    let producer = rdk::producer(&addr, &[]);
    let delivered1 = rdk::produce_all(&producer, topic, phase1, "phase 1");
    assert_eq!(delivered1.len(), phase1.len());
    drop(producer);

    // Phase 2: kill -9 while a producer is mid-stream; only what was acknowledged counts.
    let producer = rdk::producer(&addr, &[("message.timeout.ms", "5000")]);
    let rest = rest.to_vec();
    let killer = std::thread::spawn({
        let topic = topic.to_string();
        move || {
            let (delivered, _failed) = rdk::produce(&producer, &topic, &rest);
            delivered
        }
    });
    // Bounded wait until phase 2 is well under way, then SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hws = high_watermarks(&addr, topic, PARTITIONS);
        if hws.iter().sum::<i64>() >= 6_000 || killer.is_finished() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "phase 2 made no progress within 60 s: {hws:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    broker.kill();
    let delivered2 = killer.join().expect("producer thread");
    eprintln!(
        "phase 2: {} of {} acknowledged before/around the kill",
        delivered2.len(),
        records.len() - 5_000
    );

    broker.restart();
    assert_eq!(
        partition_count(&addr, topic),
        PARTITIONS as usize,
        "{topic} after restart"
    );
    assert_eq!(
        partition_count(&addr, "empty-survivor"),
        3,
        "empty topic after restart"
    );
    let hws = high_watermarks(&addr, topic, PARTITIONS);
    let consumed = consume_all(&addr, topic, &hws);
    let at: HashMap<(i32, i64), &Consumed> = consumed
        .iter()
        .map(|c| ((c.partition, c.offset), c))
        .collect();
    check_acked(&records, &delivered1, &at);
    check_acked(&records, &delivered2, &at);
    for (seq, (p, o)) in delivered1.iter().chain(delivered2.iter()) {
        assert!(
            *o < hws[*p as usize],
            "seq {seq}: acknowledged offset {o} beyond high watermark {}",
            hws[*p as usize]
        );
    }

    // Phase 3: offsets continue from the high watermarks.
    let more = make_records(1_000, "after-restart");
    let producer = rdk::producer(&addr, &[]);
    let delivered3 = rdk::produce_all(&producer, topic, &more, "phase 3");
    producer.flush(Duration::from_secs(10)).unwrap();
    let mut firsts: HashMap<i32, i64> = HashMap::new();
    for (p, o) in delivered3.values() {
        let e = firsts.entry(*p).or_insert(*o);
        *e = (*e).min(*o);
    }
    for (p, first) in firsts {
        assert_eq!(
            first, hws[p as usize],
            "partition {p}: first offset after the restart"
        );
    }
    let hws_after = high_watermarks(&addr, topic, PARTITIONS);
    assert_eq!(
        hws_after.iter().sum::<i64>(),
        hws.iter().sum::<i64>() + 1_000
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_loses_nothing() {
    let mut broker = Broker::start();
    let addr = broker.addr();
    let topic = "graceful";
    rdk::create_topic(&addr, topic, PARTITIONS);
    let records = make_records(3_000, "graceful");
    let producer = rdk::producer(&addr, &[]);
    let delivered = rdk::produce_all(&producer, topic, &records, topic);
    drop(producer);

    let status = broker.terminate();
    assert!(
        status.success(),
        "shoal serve exit status on SIGTERM: {status}\n{}",
        broker.stderr()
    );
    broker.restart();
    rdk::consume_verified(&addr, topic, PARTITIONS, &records, &delivered);

    // Restart once more without writing anything in between: still all there.
    broker.kill();
    broker.restart();
    let hws = wait_for(
        "high watermarks after the second restart",
        Duration::from_secs(10),
        || {
            let hws = high_watermarks(&addr, topic, PARTITIONS);
            if hws.iter().sum::<i64>() == records.len() as i64 {
                Ok(hws)
            } else {
                Err(format!("{hws:?}"))
            }
        },
    );
    consume_all(&addr, topic, &hws);
}
