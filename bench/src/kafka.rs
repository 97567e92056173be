//! The I/O edge: librdkafka producers and consumers driving [`run_producer`] and [`Stats`].

use crate::machine::Machine;
use crate::result::{self, BenchResult, RESULT_FORMAT};
use crate::schedule::{
    run_producer, Delivery, LoopPlan, ProducerIo, RateMode, RateSchedule, SendMeta, TrySend,
};
use crate::stats::Stats;
use crate::workload::{ConsumerAssignment, KeyDistribution, Payload, Workload};
use rand::{Rng, RngCore, SeedableRng};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Payload prefix carrying the intended send time (unix microseconds, little endian).
pub const STAMP_MAGIC: &[u8; 4] = b"SHB1";
pub const STAMP_BYTES: usize = 12;
/// Bounded waits of the run.
pub const SETUP_WAIT_S_MAX: u64 = 60;
pub const CONSUMER_DRAIN_S_MAX: u64 = 15;
pub const MESSAGE_TIMEOUT_MS: u64 = 30_000;

/// Time since the start of sending (t0); before t0 it reads 0.
pub struct RunClock {
    anchor: Instant,
    anchor_unix_us: u64,
    t0_ns: AtomicU64,
}

impl RunClock {
    pub fn new() -> RunClock {
        RunClock {
            anchor: Instant::now(),
            anchor_unix_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            t0_ns: AtomicU64::new(u64::MAX),
        }
    }

    fn since_anchor_ns(&self) -> u64 {
        self.anchor.elapsed().as_nanos() as u64
    }

    pub fn start(&self) {
        self.t0_ns.store(self.since_anchor_ns(), Ordering::SeqCst);
    }

    pub fn started(&self) -> bool {
        self.t0_ns.load(Ordering::SeqCst) != u64::MAX
    }

    pub fn now_ns(&self) -> u64 {
        self.since_anchor_ns()
            .saturating_sub(self.t0_ns.load(Ordering::Relaxed))
    }

    /// Unix microseconds of a run time.
    pub fn unix_us(&self, run_ns: u64) -> u64 {
        self.anchor_unix_us + (self.t0_ns.load(Ordering::Relaxed) + run_ns) / 1000
    }

    /// Run time of a unix microsecond stamp (None if before t0).
    pub fn run_ns(&self, unix_us: u64) -> Option<u64> {
        let since_anchor = unix_us.checked_sub(self.anchor_unix_us)? * 1000;
        since_anchor.checked_sub(self.t0_ns.load(Ordering::Relaxed))
    }
}

impl Default for RunClock {
    fn default() -> Self {
        RunClock::new()
    }
}

pub fn stamp(buf: &mut [u8], unix_us: u64) {
    if buf.len() >= STAMP_BYTES {
        buf[..4].copy_from_slice(STAMP_MAGIC);
        buf[4..12].copy_from_slice(&unix_us.to_le_bytes());
    }
}

pub fn read_stamp(buf: &[u8]) -> Option<u64> {
    if buf.len() >= STAMP_BYTES && &buf[..4] == STAMP_MAGIC {
        Some(u64::from_le_bytes(buf[4..12].try_into().ok()?))
    } else {
        None
    }
}

/// Bytes that messages are cut from (longer than one message so payloads differ).
pub fn payload_pool(kind: Payload, message_size: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let len = message_size + 4096;
    match kind {
        Payload::Zeros => vec![0u8; len],
        Payload::Random => {
            let mut v = vec![0u8; len];
            rng.fill_bytes(&mut v);
            v
        }
        Payload::Text => {
            const WORDS: [&str; 16] = [
                "shoal", "kafka", "broker", "record", "batch", "offset", "segment", "index",
                "leader", "fetch", "produce", "latency", "linger", "topic", "queue", "commit",
            ];
            let mut v = Vec::with_capacity(len + 16);
            while v.len() < len {
                v.extend_from_slice(WORDS[rng.gen_range(0..WORDS.len())].as_bytes());
                v.push(b' ');
            }
            v.truncate(len);
            v
        }
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// How a run is pointed and labelled; the workload says what to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub brokers: String,
    pub label: Option<String>,
    /// Prefix of topic names; a random suffix keeps runs apart.
    pub topic_prefix: String,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Told once when producers start (after topic creation and consumer assignment).
    pub on_start: Option<std::sync::mpsc::Sender<()>>,
}

struct ProducerCtx {
    clock: Arc<RunClock>,
    deliveries: Mutex<Vec<Delivery>>,
}

impl ClientContext for ProducerCtx {}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = Box<SendMeta>;

    fn delivery(&self, result: &DeliveryResult<'_>, meta: Box<SendMeta>) {
        let at_ns = self.clock.now_ns();
        let error = result.as_ref().err().map(|(e, _)| e.to_string());
        self.deliveries.lock().unwrap().push(Delivery {
            meta: *meta,
            at_ns,
            error,
        });
    }
}

struct KafkaProducerIo {
    producer: BaseProducer<ProducerCtx>,
    clock: Arc<RunClock>,
    topic: String,
    pool: Vec<u8>,
    scratch: Vec<u8>,
    message_size: usize,
    keys: KeyDistribution,
    key_space: u64,
    counter: u64,
    rng: rand::rngs::StdRng,
}

impl ProducerIo for KafkaProducerIo {
    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn try_send(&mut self, meta: SendMeta) -> TrySend {
        let offset = self.rng.gen_range(0..self.pool.len() - self.message_size);
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&self.pool[offset..offset + self.message_size]);
        let unix_us = self.clock.unix_us(meta.intended_ns);
        stamp(&mut self.scratch, unix_us);
        let key: Option<[u8; 8]> = match self.keys {
            KeyDistribution::None => None,
            KeyDistribution::RoundRobin => Some((self.counter % self.key_space).to_be_bytes()),
            KeyDistribution::Random => Some(self.rng.gen_range(0..self.key_space).to_be_bytes()),
        };
        self.counter += 1;
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(meta))
            .payload(&self.scratch[..])
            .timestamp((unix_us / 1000) as i64);
        if let Some(k) = key.as_ref() {
            record = record.key(&k[..]);
        }
        match self.producer.send(record) {
            Ok(()) => TrySend::Accepted,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                TrySend::QueueFull
            }
            Err((e, _)) => TrySend::Failed(e.to_string()),
        }
    }

    fn wait(&mut self, until_ns: u64, out: &mut Vec<Delivery>) {
        let now = self.clock.now_ns();
        let left = until_ns.saturating_sub(now);
        // BaseProducer::poll serves one event per call with a zero timeout, and each
        // partition batch is its own delivery event: drain them all every time.
        self.drain_events();
        if left >= 1_000_000 {
            self.producer.poll(Duration::from_millis(left / 1_000_000));
            self.drain_events();
        } else {
            let now = self.clock.now_ns();
            if until_ns > now {
                std::thread::sleep(Duration::from_nanos(until_ns - now));
            }
        }
        out.append(&mut self.producer.context().deliveries.lock().unwrap());
    }
}

/// Zero-timeout polls per drain, at most.
pub const DRAIN_EVENTS_MAX: usize = 100_000;

impl KafkaProducerIo {
    fn drain_events(&mut self) {
        for _ in 0..DRAIN_EVENTS_MAX {
            let before = self.producer.context().deliveries.lock().unwrap().len();
            self.producer.poll(Duration::ZERO);
            let after = self.producer.context().deliveries.lock().unwrap().len();
            if after == before {
                break;
            }
        }
    }
}

fn producer_config(w: &Workload, brokers: &str) -> Vec<(String, String)> {
    let mut props = vec![
        ("bootstrap.servers".to_string(), brokers.to_string()),
        ("client.id".to_string(), "shoal-bench".to_string()),
        (
            "message.timeout.ms".to_string(),
            MESSAGE_TIMEOUT_MS.to_string(),
        ),
        (
            "queue.buffering.max.messages".to_string(),
            w.in_flight_messages_max.clamp(1, 10_000_000).to_string(),
        ),
    ];
    props.extend(w.producer.librdkafka_properties());
    dedup_last_wins(props)
}

fn consumer_config(w: &Workload, brokers: &str, group: &str) -> Vec<(String, String)> {
    let mut props = vec![
        ("bootstrap.servers".to_string(), brokers.to_string()),
        ("client.id".to_string(), "shoal-bench".to_string()),
        ("group.id".to_string(), group.to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        (
            "enable.auto.commit".to_string(),
            (w.consumer_assignment == ConsumerAssignment::Group).to_string(),
        ),
        ("fetch.wait.max.ms".to_string(), "100".to_string()),
    ];
    for (k, v) in &w.consumer {
        props.push((k.clone(), v.clone()));
    }
    dedup_last_wins(props)
}

fn dedup_last_wins(props: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in props {
        if let Some(slot) = out.iter_mut().find(|(k2, _)| *k2 == k) {
            slot.1 = v;
        } else {
            out.push((k, v));
        }
    }
    out
}

fn client_config(props: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in props {
        c.set(k, v);
    }
    c
}

fn create_topics(w: &Workload, brokers: &str, topics: &[String]) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(&[("bootstrap.servers".to_string(), brokers.to_string())])
            .create()
            .map_err(|e| format!("admin client: {e}"))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            let mut n = NewTopic::new(
                t,
                w.partitions_per_topic as i32,
                TopicReplication::Fixed(w.replication_factor),
            );
            for (k, v) in &w.topic_config {
                n = n.set(k, v);
            }
            n
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = block_on(admin.create_topics(new.iter(), &opts))
        .map_err(|e| format!("CreateTopics failed: {e}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("CreateTopics {t}: {code}")),
        }
    }
    // Wait until metadata shows every partition with a leader.
    let probe: BaseProducer =
        client_config(&[("bootstrap.servers".to_string(), brokers.to_string())])
            .create()
            .map_err(|e| format!("metadata client: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(SETUP_WAIT_S_MAX);
    for t in topics {
        loop {
            let ready = probe
                .client()
                .fetch_metadata(Some(t), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    m.topics().first().map(|mt| {
                        mt.error().is_none()
                            && mt.partitions().len() == w.partitions_per_topic as usize
                            && mt.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "topic {t}: metadata did not show {} partitions with leaders within {SETUP_WAIT_S_MAX} s",
                    w.partitions_per_topic
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// The librdkafka version string the client was built with.
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// Deletes every topic whose name starts with `prefix` (bounded wait); returns how many.
/// The tuner uses it to keep a long sweep from filling the broker's disk.
pub fn delete_topics_with_prefix(brokers: &str, prefix: &str) -> Result<usize, String> {
    let cfg = client_config(&[("bootstrap.servers".to_string(), brokers.to_string())]);
    let probe: BaseProducer = cfg.create().map_err(|e| format!("metadata client: {e}"))?;
    let meta = probe
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(|e| format!("metadata: {e}"))?;
    let names: Vec<String> = meta
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    if names.is_empty() {
        return Ok(0);
    }
    let admin: AdminClient<DefaultClientContext> =
        cfg.create().map_err(|e| format!("admin client: {e}"))?;
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = block_on(admin.delete_topics(&refs, &opts))
        .map_err(|e| format!("DeleteTopics failed: {e}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((t, code)) => return Err(format!("DeleteTopics {t}: {code}")),
        }
    }
    Ok(names.len())
}

struct ConsumerHandle {
    stats: Arc<Mutex<Stats>>,
    assigned: Arc<AtomicUsize>,
    join: std::thread::JoinHandle<Result<(), String>>,
}

/// Partitions consumer `member` of `members` reads under manual assignment.
pub fn manual_share(partitions: u32, member: u32, members: u32) -> Vec<i32> {
    assert!(member < members);
    (0..partitions)
        .filter(|p| p % members == member)
        .map(|p| p as i32)
        .collect()
}

fn spawn_consumer(
    props: Vec<(String, String)>,
    topic: String,
    manual: Option<Vec<i32>>,
    clock: Arc<RunClock>,
    stats: Arc<Mutex<Stats>>,
    stop: Arc<AtomicBool>,
) -> Result<ConsumerHandle, String> {
    let consumer: BaseConsumer = client_config(&props)
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    match &manual {
        Some(parts) => {
            let mut tpl = TopicPartitionList::new();
            for &p in parts {
                tpl.add_partition_offset(&topic, p, Offset::Beginning)
                    .map_err(|e| format!("assign {topic}/{p}: {e}"))?;
            }
            consumer
                .assign(&tpl)
                .map_err(|e| format!("assign {topic}: {e}"))?;
        }
        None => consumer
            .subscribe(&[&topic])
            .map_err(|e| format!("subscribe {topic}: {e}"))?,
    }
    let assigned = Arc::new(AtomicUsize::new(0));
    let (s2, a2) = (stats.clone(), assigned.clone());
    let join = std::thread::Builder::new()
        .name("bench-consumer".into())
        .spawn(move || {
            let mut polls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(50)) {
                    None => {}
                    Some(Err(e)) => {
                        s2.lock()
                            .unwrap()
                            .on_error(clock.now_ns(), &format!("consume: {e}"));
                    }
                    Some(Ok(m)) => {
                        let now = clock.now_ns();
                        let payload = m.payload().unwrap_or(&[]);
                        let intended = read_stamp(payload)
                            .or_else(|| m.timestamp().to_millis().map(|ms| ms as u64 * 1000))
                            .and_then(|us| clock.run_ns(us));
                        if clock.started() {
                            s2.lock()
                                .unwrap()
                                .on_receive(intended, now, payload.len() as u64);
                        }
                    }
                }
                polls += 1;
                if polls.is_multiple_of(8) {
                    let n = consumer.assignment().map(|a| a.count()).unwrap_or(0);
                    a2.store(n, Ordering::Relaxed);
                }
            }
            Ok(())
        })
        .map_err(|e| format!("spawn consumer: {e}"))?;
    Ok(ConsumerHandle {
        stats,
        assigned,
        join,
    })
}

/// Runs a workload end to end and returns the result (also used by the tuner).
pub fn run(w: &Workload, opts: &RunOptions) -> Result<BenchResult, String> {
    w.validate()?;
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let suffix: u32 = rand::thread_rng().gen();
    let topics: Vec<String> = (0..w.topics)
        .map(|i| format!("{}-{}-{suffix:08x}-{i}", opts.topic_prefix, w.name))
        .collect();
    let progress = |msg: &str| {
        if opts.progress {
            eprintln!("shoal-bench: {msg}");
        }
    };
    progress(&format!(
        "creating {} topic(s) x {} partitions on {}",
        w.topics, w.partitions_per_topic, opts.brokers
    ));
    create_topics(w, &opts.brokers, &topics)?;

    let clock = Arc::new(RunClock::new());
    let measure_start = w.warmup_s * 1_000_000_000;
    let measure_end = (w.warmup_s + w.duration_s) * 1_000_000_000;
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let mut consumers = Vec::new();
    let mut groups = Vec::new();
    for topic in &topics {
        for s in 0..w.subscriptions_per_topic {
            let group = format!("{topic}-sub{s}");
            let mut members = Vec::new();
            for c in 0..w.consumers_per_subscription {
                let manual = (w.consumer_assignment == ConsumerAssignment::Manual)
                    .then(|| manual_share(w.partitions_per_topic, c, w.consumers_per_subscription));
                let h = spawn_consumer(
                    consumer_config(w, &opts.brokers, &group),
                    topic.clone(),
                    manual,
                    clock.clone(),
                    Arc::new(Mutex::new(Stats::new(measure_start, measure_end))),
                    stop_consumers.clone(),
                )?;
                members.push(h.assigned.clone());
                consumers.push(h);
            }
            if !members.is_empty() {
                groups.push(members);
            }
        }
    }
    if !groups.is_empty() {
        progress(&format!(
            "waiting for {} consumer(s) to get partitions",
            consumers.len()
        ));
        let deadline = Instant::now() + Duration::from_secs(SETUP_WAIT_S_MAX);
        loop {
            let all = groups.iter().all(|members| {
                members
                    .iter()
                    .map(|a| a.load(Ordering::Relaxed))
                    .sum::<usize>()
                    == w.partitions_per_topic as usize
            });
            if all {
                break;
            }
            if Instant::now() >= deadline {
                stop_consumers.store(true, Ordering::Relaxed);
                return Err(format!(
                    "consumers did not get all partitions assigned within {SETUP_WAIT_S_MAX} s"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let pprops = producer_config(w, &opts.brokers);
    let producers_n = w.producers() as u64;
    let mode = if w.is_max_rate() {
        RateMode::Max
    } else {
        RateMode::Fixed {
            per_s: w.producer_rate / producers_n as f64,
        }
    };
    let mut ios = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        for p in 0..w.producers_per_topic {
            let ctx = ProducerCtx {
                clock: clock.clone(),
                deliveries: Mutex::new(Vec::with_capacity(4096)),
            };
            let producer: BaseProducer<ProducerCtx> = client_config(&pprops)
                .create_with_context(ctx)
                .map_err(|e| format!("producer: {e}"))?;
            let seed = (i as u64) << 32 | p as u64;
            ios.push(KafkaProducerIo {
                producer,
                clock: clock.clone(),
                topic: topic.clone(),
                pool: payload_pool(w.payload, w.message_size as usize, seed),
                scratch: Vec::with_capacity(w.message_size as usize),
                message_size: w.message_size as usize,
                keys: w.key_distribution,
                key_space: w.key_space,
                counter: 0,
                rng: rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed),
            });
        }
    }
    let plan = LoopPlan {
        end_ns: measure_end,
        drain_ns_max: (MESSAGE_TIMEOUT_MS + 5_000) * 1_000_000,
        in_flight_messages_max: w.in_flight_messages_max,
        message_bytes: w.message_size,
        backoff_ns: 1_000_000,
    };
    let stop_producers = Arc::new(AtomicBool::new(false));
    progress(&format!(
        "running {}: {} producer(s), {} consumer(s), {}, warm-up {} s, measure {} s",
        w.name,
        producers_n,
        consumers.len(),
        if w.is_max_rate() {
            "MAX RATE".to_string()
        } else {
            format!("{} msg/s", w.producer_rate)
        },
        w.warmup_s,
        w.duration_s
    ));
    clock.start();
    if let Some(tx) = &opts.on_start {
        let _ = tx.send(());
    }
    let mut producer_handles = Vec::new();
    for (k, mut io) in ios.into_iter().enumerate() {
        let stats = Arc::new(Mutex::new(Stats::new(measure_start, measure_end)));
        let phase_ns = match mode {
            RateMode::Fixed { per_s } => (1e9 / per_s * k as f64 / producers_n as f64) as u64,
            RateMode::Max => 0,
        };
        let s2 = stats.clone();
        let stop = stop_producers.clone();
        let join = std::thread::Builder::new()
            .name("bench-producer".into())
            .spawn(move || {
                let mut sch = RateSchedule::new(mode, phase_ns);
                let out = run_producer(&mut io, &mut sch, &s2, &plan, &stop);
                io.producer.poll(Duration::ZERO);
                out
            })
            .map_err(|e| format!("spawn producer: {e}"))?;
        producer_handles.push((stats, join));
    }

    // Progress until the producers are done.
    let mut last_second = 0u64;
    while producer_handles.iter().any(|(_, j)| !j.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        let sec = clock.now_ns() / 1_000_000_000;
        if opts.progress && sec > last_second && sec >= 1 {
            last_second = sec;
            let line = progress_line(
                w,
                sec - 1,
                producer_handles.iter().map(|(s, _)| s),
                consumers.iter().map(|c| &c.stats),
            );
            eprintln!("{line}");
        }
    }
    let mut undelivered = 0;
    let mut merged = Stats::new(measure_start, measure_end);
    for (stats, join) in producer_handles {
        let out = join
            .join()
            .map_err(|_| "producer thread panicked".to_string())?;
        undelivered += out.undelivered;
        merged.merge(&stats.lock().unwrap());
    }
    // Let consumers catch up with everything acknowledged (bounded).
    let acked_all: u64 = merged.buckets.iter().map(|b| b.counts.acked).sum();
    let expected = acked_all * w.subscriptions_per_topic as u64;
    let deadline = Instant::now() + Duration::from_secs(CONSUMER_DRAIN_S_MAX);
    while !consumers.is_empty() && Instant::now() < deadline {
        let got: u64 = consumers
            .iter()
            .map(|c| {
                c.stats
                    .lock()
                    .unwrap()
                    .buckets
                    .iter()
                    .map(|b| b.counts.received)
                    .sum::<u64>()
            })
            .sum();
        if got >= expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop_consumers.store(true, Ordering::Relaxed);
    for c in consumers {
        c.join
            .join()
            .map_err(|_| "consumer thread panicked".to_string())??;
        merged.merge(&c.stats.lock().unwrap());
    }

    let mut notes = Vec::new();
    if w.is_max_rate() {
        notes.push(
            "MAX-RATE run: producers send as fast as the client accepts (bounded by in_flight_messages_max); \
             latency is measured from the actual send and includes client-side queueing. \
             Use fixed-rate runs for latency SLOs."
                .to_string(),
        );
    }
    let received_all: u64 = merged.buckets.iter().map(|b| b.counts.received).sum();
    if w.consumers() > 0 && received_all < expected {
        notes.push(format!(
            "consumers received {received_all} of {expected} expected messages within {CONSUMER_DRAIN_S_MAX} s after producing ended"
        ));
    }
    if undelivered > 0 {
        notes.push(format!(
            "{undelivered} message(s) never got a delivery report"
        ));
    }
    let result = BenchResult {
        format: RESULT_FORMAT.to_string(),
        label: opts.label.clone().unwrap_or_else(|| w.name.clone()),
        workload: w.clone(),
        brokers: opts.brokers.clone(),
        rate_mode: if w.is_max_rate() { "max" } else { "fixed" }.to_string(),
        coordinated_omission_corrected: !w.is_max_rate(),
        target_msgs_per_s: w.producer_rate,
        producer_config: pprops,
        consumer_config: consumer_config(w, &opts.brokers, "<per subscription>"),
        started_unix_s,
        measured_s: w.duration_s as f64,
        client: format!("librdkafka {}", rdkafka::util::get_rdkafka_version().1),
        machine: Machine::detect(),
        throughput: result::throughput(&merged, undelivered),
        histograms: result::histograms(&merged),
        series: result::series(&merged, w.warmup_s),
        first_error: merged.first_error.clone(),
        notes,
    };
    Ok(result)
}

fn progress_line<'a>(
    w: &Workload,
    sec: u64,
    producers: impl Iterator<Item = &'a Arc<Mutex<Stats>>>,
    consumers: impl Iterator<Item = &'a Arc<Mutex<Stats>>>,
) -> String {
    let mut b = Stats::new(0, 0);
    for s in producers.chain(consumers) {
        let s = s.lock().unwrap();
        if let Some(bucket) = s.buckets.get(sec as usize) {
            let mut one = Stats::new(0, 0);
            one.buckets = vec![Default::default(); sec as usize];
            one.buckets.push(bucket.clone());
            b.merge(&one);
        }
    }
    let total = w.warmup_s + w.duration_s;
    let bucket = b.buckets.get(sec as usize).cloned().unwrap_or_default();
    let q = |h: &Option<hdrhistogram::Histogram<u64>>| {
        h.as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| format!("{:.2} ms", h.value_at_quantile(0.99) as f64 / 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "[{:>4}/{} s{}] pub {:>9} msg/s {:>8.2} MB/s | con {:>9} msg/s {:>8.2} MB/s | p99 pub {} e2e {} | err {}",
        sec + 1,
        total,
        if sec < w.warmup_s { " warm-up" } else { "" },
        bucket.counts.acked,
        bucket.counts.acked_bytes as f64 / 1e6,
        bucket.counts.received,
        bucket.counts.received_bytes as f64 / 1e6,
        q(&bucket.publish),
        q(&bucket.e2e),
        bucket.counts.errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_shares_cover_every_partition_once() {
        let mut all: Vec<i32> = (0..4).flat_map(|m| manual_share(100, m, 4)).collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<i32>>());
        assert_eq!(manual_share(2, 3, 4), Vec::<i32>::new());
    }

    #[test]
    fn stamp_round_trips() {
        let mut buf = vec![0u8; 32];
        stamp(&mut buf, 1_700_000_000_123_456);
        assert_eq!(read_stamp(&buf), Some(1_700_000_000_123_456));
        assert_eq!(read_stamp(&buf[..11]), None);
        assert_eq!(read_stamp(&[0u8; 32]), None);
        let mut tiny = vec![0u8; 4];
        stamp(&mut tiny, 5);
        assert_eq!(tiny, vec![0u8; 4]);
    }

    #[test]
    fn clock_maps_run_time_to_unix_and_back() {
        let c = RunClock::new();
        c.start();
        let us = c.unix_us(5_000_000_000);
        let back = c.run_ns(us).unwrap();
        assert!(back.abs_diff(5_000_000_000) < 1000, "{back}");
        assert_eq!(c.run_ns(0), None);
    }

    #[test]
    fn payload_pools_have_the_asked_compressibility() {
        let z = payload_pool(Payload::Zeros, 100, 1);
        assert!(z.iter().all(|&b| b == 0));
        let r = payload_pool(Payload::Random, 100, 1);
        assert_eq!(r.len(), 4196);
        assert!(r.iter().filter(|&&b| b == 0).count() < 100);
        let t = payload_pool(Payload::Text, 100, 1);
        assert!(t.iter().all(|b| b.is_ascii_lowercase() || *b == b' '));
    }

    #[test]
    fn user_properties_override_defaults() {
        let mut w = Workload::from_toml(
            "name='x'\ntopics=1\npartitions_per_topic=1\nmessage_size=10\nproducers_per_topic=1\nconsumers_per_subscription=0\nproducer_rate=1\nduration_s=1\n",
        )
        .unwrap();
        w.producer
            .extra
            .insert("message.timeout.ms".into(), "5000".into());
        let p = producer_config(&w, "h:1");
        let v: Vec<_> = p
            .iter()
            .filter(|(k, _)| k == "message.timeout.ms")
            .collect();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].1, "5000");
    }
}
