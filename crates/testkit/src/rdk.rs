//! librdkafka (the `rdkafka` crate) driven synchronously: BaseProducer with delivery reports,
//! BaseConsumer with assign() from an offset, AdminClient for topics. All waits are bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{Consumed, Produced};

/// Bound for producing (all delivery reports in) and for consuming a data set.
pub const RDKAFKA_TIMEOUT: Duration = Duration::from_secs(120);

/// Successful deliveries: produce sequence number -> (partition, offset).
pub type Delivered = HashMap<usize, (i32, i64)>;
/// Failed deliveries: (produce sequence number, error).
pub type Failed = Vec<(usize, String)>;

/// Delivery reports by produce sequence number.
#[derive(Default)]
pub struct Reports {
    pub delivered: Mutex<Delivered>,
    pub failed: Mutex<Failed>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<usize>) {
        match result {
            Ok(message) => {
                self.delivered
                    .lock()
                    .unwrap()
                    .insert(*seq, (message.partition(), message.offset()));
            }
            Err((error, _)) => self.failed.lock().unwrap().push((*seq, error.to_string())),
        }
    }
}

/// Delivery reports counted, not kept (failures are logged). Clones share the counts, so a
/// test can keep one while the producer owns another.
#[derive(Default, Clone)]
pub struct DeliveryCounts {
    pub ok: Arc<AtomicUsize>,
    pub failed: Arc<AtomicUsize>,
}

impl ClientContext for DeliveryCounts {}

impl ProducerContext for DeliveryCounts {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::SeqCst),
            Err((e, _)) => {
                eprintln!("delivery failed: {e}");
                self.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
    }
}

pub fn producer(addr: &str, extra: &[(&str, &str)]) -> BaseProducer<Reports> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", addr)
        // Java's default partitioner for keyed records (librdkafka's default is CRC32).
        .set("partitioner", "murmur2_random")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
        .create_with_context(Reports::default())
        .expect("create rdkafka BaseProducer")
}

/// `produce`, asserting that no delivery failed (`what` names the data set). Returns the
/// delivery reports.
pub fn produce_all(
    producer: &BaseProducer<Reports>,
    topic: &str,
    records: &[Produced],
    what: &str,
) -> Delivered {
    let (delivered, failed) = produce(producer, topic, records);
    assert!(
        failed.is_empty(),
        "{what}: {} delivery failures, first: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    delivered
}

/// Consumes `records.len()` records of `topic` from the beginning and `verify`s them against
/// `records` and their delivery reports, every check on. Returns records per partition.
pub fn consume_verified(
    addr: &str,
    topic: &str,
    partitions: i32,
    records: &[Produced],
    delivered: &Delivered,
) -> Vec<usize> {
    let consumed = consume(addr, topic, partitions, Offset::Beginning, records.len());
    super::verify(
        records,
        &consumed,
        partitions,
        Some(delivered),
        super::Checks::ALL,
    )
}

/// Produces `records` (keys, headers, timestamps) and waits for every delivery report.
/// Returns (delivered, failed).
pub fn produce(
    producer: &BaseProducer<Reports>,
    topic: &str,
    records: &[Produced],
) -> (Delivered, Failed) {
    let deadline = Instant::now() + RDKAFKA_TIMEOUT;
    for r in records {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(r.seq))
            .key(&r.key[..])
            .payload(&r.value[..])
            .timestamp(r.timestamp)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                    assert!(
                        Instant::now() < deadline,
                        "rdkafka queue still full after {RDKAFKA_TIMEOUT:?}"
                    );
                }
                Err((e, _)) => panic!("rdkafka send seq {}: {e}", r.seq),
            }
        }
        producer.poll(Duration::ZERO);
    }
    flush(producer, records.len(), deadline);
    let delivered = producer.context().delivered.lock().unwrap().clone();
    let failed = producer.context().failed.lock().unwrap().clone();
    (delivered, failed)
}

/// Bounded wait until `expected` delivery reports (successes + failures) are in.
pub fn flush(producer: &BaseProducer<Reports>, expected: usize, deadline: Instant) {
    loop {
        producer.poll(Duration::from_millis(50));
        let done = producer.context().delivered.lock().unwrap().len()
            + producer.context().failed.lock().unwrap().len();
        if done >= expected && producer.in_flight_count() == 0 {
            return;
        }
        if Instant::now() > deadline {
            let failed = producer.context().failed.lock().unwrap();
            panic!(
                "only {done} of {expected} delivery reports within {RDKAFKA_TIMEOUT:?} (in flight {}); first failures: {:?}",
                producer.in_flight_count(),
                &failed[..failed.len().min(3)]
            );
        }
    }
}

pub fn consumer(addr: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", addr)
        // librdkafka's consumer needs a group.id even for assign(); no group is joined.
        .set("group.id", "shoal-test-assign")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("create rdkafka BaseConsumer")
}

/// Consumes exactly `expected` records from all `partitions` of `topic`, starting at
/// `from` (per partition), then checks nothing more arrives within a short poll.
pub fn consume(
    addr: &str,
    topic: &str,
    partitions: i32,
    from: Offset,
    expected: usize,
) -> Vec<Consumed> {
    let consumer = consumer(addr, &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, from).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + RDKAFKA_TIMEOUT;
    let mut out = Vec::with_capacity(expected);
    // Consumer errors are kept, not fatal: with a group.id librdkafka also talks to the group
    // coordinator, whose errors don't stop assign()ed fetching. The data checks stay exact.
    let mut errors: Vec<String> = Vec::new();
    while out.len() < expected {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {expected} records from {topic} within {RDKAFKA_TIMEOUT:?}; \
             consumer errors ({}): {:?}",
            out.len(),
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => out.push(to_consumed(&message)),
            Some(Err(e)) => errors.push(e.to_string()),
            None => {}
        }
    }
    if !errors.is_empty() {
        eprintln!(
            "consume {topic}: {} consumer errors tolerated, first: {}",
            errors.len(),
            errors[0]
        );
    }
    // Nothing beyond the expected records (bounded look for extras).
    let extra_deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < extra_deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            panic!(
                "consumed more than the {expected} expected records: extra at {}/{}",
                message.partition(),
                message.offset()
            );
        }
    }
    out
}

pub fn to_consumed<M: Message>(message: &M) -> Consumed {
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value.map(|v| v.to_vec()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Consumed {
        key: message.key().map(|k| k.to_vec()),
        value: message.payload().map(|v| v.to_vec()).unwrap_or_default(),
        headers,
        timestamp: message.timestamp().to_millis().unwrap_or(-1),
        partition: message.partition(),
        offset: message.offset(),
    }
}

/// Creates a topic through librdkafka's AdminClient (CreateTopics), bounded.
pub fn create_topic(addr: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("create rdkafka AdminClient");
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = futures_lite::future::block_on(admin.create_topics([&new_topic], &options))
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    for result in results {
        if let Err((name, code)) = result {
            panic!("CreateTopics {name}: {code:?}");
        }
    }
}
