//! Send scheduling and the producer loop, free of any Kafka client.
//!
//! At a fixed rate, message `i` is *due* at `start + phase + i / rate`. Latency is measured
//! from that intended time, so a stalled broker (or a stalled client) is charged for every
//! message that should have been sent meanwhile: no coordinated omission. In max-rate mode
//! the intended time is the actual send time, and results say so.

use crate::stats::Stats;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateMode {
    /// Messages per second for this producer.
    Fixed {
        per_s: f64,
    },
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Send the next message now; it was due at `intended_ns`.
    Due { intended_ns: u64 },
    /// Nothing is due before this time.
    NotBefore(u64),
}

#[derive(Clone, Debug)]
pub struct RateSchedule {
    mode: RateMode,
    origin_ns: u64,
    sent: u64,
}

impl RateSchedule {
    /// `origin_ns` is when message 0 is due (run start plus this producer's phase).
    pub fn new(mode: RateMode, origin_ns: u64) -> RateSchedule {
        if let RateMode::Fixed { per_s } = mode {
            assert!(per_s.is_finite() && per_s > 0.0, "rate must be positive");
        }
        RateSchedule {
            mode,
            origin_ns,
            sent: 0,
        }
    }

    pub fn mode(&self) -> RateMode {
        self.mode
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// When message `i` is due (fixed rate only).
    pub fn intended_ns(&self, i: u64) -> Option<u64> {
        match self.mode {
            RateMode::Fixed { per_s } => {
                Some(self.origin_ns + (i as f64 * 1e9 / per_s).round() as u64)
            }
            RateMode::Max => None,
        }
    }

    pub fn poll(&self, now_ns: u64) -> Poll {
        match self.intended_ns(self.sent) {
            None => Poll::Due {
                intended_ns: now_ns.max(self.origin_ns),
            },
            Some(due) if due <= now_ns => Poll::Due { intended_ns: due },
            Some(due) => Poll::NotBefore(due),
        }
    }

    /// The message returned by the last `poll` was handed to the client (or failed for good).
    pub fn mark_sent(&mut self) {
        self.sent += 1;
    }
}

/// Carried with each message through the client and back in its delivery report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendMeta {
    pub intended_ns: u64,
    pub sent_ns: u64,
    pub bytes: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub meta: SendMeta,
    pub at_ns: u64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrySend {
    Accepted,
    /// The client's queue is full: try the same message again after waiting.
    QueueFull,
    /// Rejected for good (counted as an error).
    Failed(String),
}

/// The edge between the loop and a real (or simulated) producer client and clock.
pub trait ProducerIo {
    /// Nanoseconds since run start.
    fn now_ns(&self) -> u64;
    fn try_send(&mut self, meta: SendMeta) -> TrySend;
    /// Serve delivery reports into `out`, waiting at most until `until_ns` (returns early
    /// once at least one report arrived). `until_ns <= now` means: do not block.
    fn wait(&mut self, until_ns: u64, out: &mut Vec<Delivery>);
}

#[derive(Clone, Copy, Debug)]
pub struct LoopPlan {
    /// No message is sent at or after this time.
    pub end_ns: u64,
    /// After `end_ns`, wait at most this long for outstanding deliveries.
    pub drain_ns_max: u64,
    /// Sent but unacknowledged messages allowed at once.
    pub in_flight_messages_max: u64,
    pub message_bytes: u32,
    /// Longest single wait while something is due but cannot be sent.
    pub backoff_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopOutcome {
    pub sent: u64,
    /// Deliveries still missing when the drain timed out.
    pub undelivered: u64,
}

/// Runs one producer until `plan.end_ns` (or `stop`), then drains.
pub fn run_producer<I: ProducerIo>(
    io: &mut I,
    schedule: &mut RateSchedule,
    stats: &Mutex<Stats>,
    plan: &LoopPlan,
    stop: &AtomicBool,
) -> LoopOutcome {
    assert!(plan.in_flight_messages_max > 0);
    assert!(plan.backoff_ns > 0);
    let mut in_flight: u64 = 0;
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(1024);
    let mut since_poll = 0u32;
    let catch_up_deadline = plan.end_ns.saturating_add(plan.drain_ns_max);
    loop {
        let now = io.now_ns();
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // At a fixed rate every message due before the end is sent, even if the loop got
        // there late (bounded); at max rate the end is the end.
        let behind = schedule
            .intended_ns(schedule.sent())
            .is_some_and(|t| t < plan.end_ns);
        if now >= plan.end_ns && (!behind || now >= catch_up_deadline) {
            break;
        }
        match schedule.poll(now) {
            Poll::Due { intended_ns } if in_flight < plan.in_flight_messages_max => {
                let meta = SendMeta {
                    intended_ns,
                    sent_ns: now,
                    bytes: plan.message_bytes,
                };
                match io.try_send(meta) {
                    TrySend::Accepted => {
                        schedule.mark_sent();
                        in_flight += 1;
                        stats.lock().unwrap().on_send(intended_ns, now);
                        since_poll += 1;
                        if since_poll >= 64 {
                            since_poll = 0;
                            io.wait(now, &mut deliveries);
                        }
                    }
                    TrySend::QueueFull => io.wait(now + plan.backoff_ns, &mut deliveries),
                    TrySend::Failed(e) => {
                        schedule.mark_sent();
                        stats.lock().unwrap().on_error(now, &e);
                    }
                }
            }
            Poll::Due { .. } => io.wait(now + plan.backoff_ns, &mut deliveries),
            Poll::NotBefore(t) => io.wait(t.min(plan.end_ns.max(now)), &mut deliveries),
        }
        in_flight -= settle(&mut deliveries, stats);
    }
    let deadline = io.now_ns().saturating_add(plan.drain_ns_max);
    loop {
        in_flight -= settle(&mut deliveries, stats);
        let now = io.now_ns();
        if in_flight == 0 || now >= deadline {
            break;
        }
        io.wait((now + 10_000_000).min(deadline), &mut deliveries);
    }
    LoopOutcome {
        sent: schedule.sent(),
        undelivered: in_flight,
    }
}

fn settle(deliveries: &mut Vec<Delivery>, stats: &Mutex<Stats>) -> u64 {
    if deliveries.is_empty() {
        return 0;
    }
    let n = deliveries.len() as u64;
    let mut s = stats.lock().unwrap();
    for d in deliveries.drain(..) {
        match &d.error {
            None => s.on_ack(
                d.meta.intended_ns,
                d.meta.sent_ns,
                d.at_ns,
                d.meta.bytes as u64,
            ),
            Some(e) => s.on_error(d.at_ns, e),
        }
    }
    n
}

#[cfg(test)]
pub mod sim {
    //! A simulated broker and client with a virtual clock, for deterministic tests.
    use super::*;
    use std::collections::VecDeque;

    pub struct SimBroker {
        pub now_ns: u64,
        /// Time the broker needs per message.
        pub service_ns: u64,
        /// The broker processes nothing in [stall.0, stall.1).
        pub stall: Option<(u64, u64)>,
        /// Client queue capacity (unacknowledged messages).
        pub queue_max: usize,
        /// How late the client wakes from a timed wait.
        pub wake_late_ns: u64,
        broker_free_ns: u64,
        pending: VecDeque<(u64, SendMeta)>,
    }

    impl SimBroker {
        pub fn new(service_ns: u64, queue_max: usize) -> SimBroker {
            SimBroker {
                now_ns: 0,
                service_ns,
                stall: None,
                queue_max,
                wake_late_ns: 0,
                broker_free_ns: 0,
                pending: VecDeque::new(),
            }
        }
    }

    impl ProducerIo for SimBroker {
        fn now_ns(&self) -> u64 {
            self.now_ns
        }

        fn try_send(&mut self, meta: SendMeta) -> TrySend {
            if self.pending.len() >= self.queue_max {
                return TrySend::QueueFull;
            }
            let mut start = self.broker_free_ns.max(self.now_ns);
            if let Some((a, b)) = self.stall {
                if start + self.service_ns > a && start < b {
                    start = b;
                }
            }
            let done = start + self.service_ns;
            self.broker_free_ns = done;
            self.pending.push_back((done, meta));
            TrySend::Accepted
        }

        fn wait(&mut self, until_ns: u64, out: &mut Vec<Delivery>) {
            let first = self.pending.front().map(|p| p.0);
            let target = match first {
                Some(t) if t <= until_ns => t.max(self.now_ns),
                _ => until_ns.max(self.now_ns) + self.wake_late_ns,
            };
            self.now_ns = target.max(self.now_ns);
            while let Some(&(t, meta)) = self.pending.front() {
                if t > self.now_ns {
                    break;
                }
                self.pending.pop_front();
                out.push(Delivery {
                    meta,
                    at_ns: t,
                    error: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sim::SimBroker;
    use super::*;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn plan(end_ns: u64) -> LoopPlan {
        LoopPlan {
            end_ns,
            drain_ns_max: 5 * S,
            in_flight_messages_max: 1_000_000,
            message_bytes: 100,
            backoff_ns: MS,
        }
    }

    #[test]
    fn fixed_schedule_spaces_messages() {
        let mut s = RateSchedule::new(RateMode::Fixed { per_s: 1000.0 }, 5 * MS);
        assert_eq!(s.poll(0), Poll::NotBefore(5 * MS));
        assert_eq!(
            s.poll(5 * MS),
            Poll::Due {
                intended_ns: 5 * MS
            }
        );
        s.mark_sent();
        assert_eq!(s.poll(5 * MS), Poll::NotBefore(6 * MS));
        // Late: the intended time stays the schedule's, not the late clock's.
        assert_eq!(
            s.poll(9 * MS),
            Poll::Due {
                intended_ns: 6 * MS
            }
        );
        assert_eq!(s.intended_ns(1000), Some(1005 * MS));
        let m = RateSchedule::new(RateMode::Max, 0);
        assert_eq!(m.poll(42), Poll::Due { intended_ns: 42 });
    }

    #[test]
    fn achieved_rate_matches_target_below_capacity() {
        // 5,000 msgs/s against a broker able to do 100,000/s, clients waking 30 us late.
        let mut io = SimBroker::new(10_000, 10_000);
        io.wake_late_ns = 30_000;
        let stats = Mutex::new(Stats::new(S, 11 * S));
        let mut sch = RateSchedule::new(RateMode::Fixed { per_s: 5000.0 }, 0);
        let out = run_producer(
            &mut io,
            &mut sch,
            &stats,
            &plan(11 * S),
            &AtomicBool::new(false),
        );
        assert_eq!(out.undelivered, 0);
        let s = stats.into_inner().unwrap();
        let rate = s.counts.sent as f64 / 10.0;
        assert!((rate - 5000.0).abs() / 5000.0 < 0.02, "rate {rate}");
        // Every message due in the window was sent and measured, none more.
        assert_eq!(s.publish_latency.len(), 50_000);
        // Latency is the service time plus the wake-up lateness, nothing more.
        assert!(s.publish_latency.max() <= 41, "{}", s.publish_latency.max());
    }

    #[test]
    fn broker_stall_shows_in_corrected_latency() {
        // 1,000 msgs/s; the broker stalls for 500 ms at t = 5 s; the client queue holds 10.
        let mut io = SimBroker::new(50_000, 10);
        io.stall = Some((5 * S, 5 * S + 500 * MS));
        let stats = Mutex::new(Stats::new(S, 10 * S));
        let mut sch = RateSchedule::new(RateMode::Fixed { per_s: 1000.0 }, 0);
        let out = run_producer(
            &mut io,
            &mut sch,
            &stats,
            &plan(10 * S),
            &AtomicBool::new(false),
        );
        assert_eq!(out.undelivered, 0);
        let s = stats.into_inner().unwrap();
        // Every message the schedule asked for in the window was measured.
        assert_eq!(s.publish_latency.len(), 9000);
        // The stall is in the corrected numbers: the max is the whole stall, and the ~500
        // messages due during it (5.5% of the window) push p95 up to hundreds of ms.
        assert!(
            s.publish_latency.max() >= 490_000,
            "{}",
            s.publish_latency.max()
        );
        assert!(s.publish_latency.value_at_quantile(0.95) >= 20_000);
        // A naive measurement from the actual send hides most of it (queue of 10 only).
        assert!(s.publish_latency_uncorrected.value_at_quantile(0.99) < 1_000);
        // And the delay before sending is where the stall went.
        assert!(
            s.publish_delay.max() >= 440_000,
            "{}",
            s.publish_delay.max()
        );
    }

    #[test]
    fn in_flight_limit_is_respected_and_charged() {
        // Broker does 1,000/s; producer wants 2,000/s with at most 5 in flight.
        let mut io = SimBroker::new(MS, 1_000_000);
        let stats = Mutex::new(Stats::new(0, 2 * S));
        let mut sch = RateSchedule::new(RateMode::Fixed { per_s: 2000.0 }, 0);
        let mut p = plan(2 * S);
        p.in_flight_messages_max = 5;
        run_producer(&mut io, &mut sch, &stats, &p, &AtomicBool::new(false));
        let s = stats.into_inner().unwrap();
        // Falling behind means latency grows with time: ~1 s behind by the end.
        assert!(
            s.publish_latency.max() >= 900_000,
            "{}",
            s.publish_latency.max()
        );
        assert!(s.counts.acked <= 2001);
    }

    #[test]
    fn max_rate_keeps_the_client_busy() {
        let mut io = SimBroker::new(100_000, 8);
        let stats = Mutex::new(Stats::new(0, S));
        let mut sch = RateSchedule::new(RateMode::Max, 0);
        run_producer(&mut io, &mut sch, &stats, &plan(S), &AtomicBool::new(false));
        let s = stats.into_inner().unwrap();
        // 10,000/s capacity: within a message or two of saturating it.
        assert!(s.counts.acked >= 9_990, "{}", s.counts.acked);
        // Sent when due (0, recorded as the histogram's lowest value, 1 us).
        assert!(s.publish_delay.max() <= 1);
    }

    #[test]
    fn stop_flag_ends_the_loop() {
        let mut io = SimBroker::new(1000, 8);
        let stats = Mutex::new(Stats::new(0, S));
        let mut sch = RateSchedule::new(RateMode::Max, 0);
        let out = run_producer(&mut io, &mut sch, &stats, &plan(S), &AtomicBool::new(true));
        assert_eq!(out.sent, 0);
    }
}
