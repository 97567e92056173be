//! A consumer group member on Kafka's classic protocol: [`Membership`] is the plain state
//! machine (member id, generation, what a broker error code means, when to heartbeat);
//! [`GroupConsumer`] does the I/O around it (join, sync, heartbeat, fetch, commit, leave).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    range_assign, Assignment, Client, ClientError, FetchOptions, JoinParams, JoinResult,
    OffsetSpec, PartitionFetch, Result, Subscription,
};
use shoal_protocol::errors;

pub const PROTOCOL_TYPE: &str = "consumer";
pub const PROTOCOL_RANGE: &str = "range";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Must (re)join before fetching.
    Unjoined,
    /// Joined and synced for `generation_id`.
    Stable,
}

/// What to do after a broker answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Rejoin,
    FindCoordinator,
    Fail,
}

/// Member id, generation and heartbeat timing. Time is passed in (ms since any origin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub member_id: String,
    pub generation_id: i32,
    pub state: MemberState,
    pub heartbeat_interval_ms: u64,
    last_heartbeat_ms: u64,
}

impl Membership {
    pub fn new(heartbeat_interval_ms: u64) -> Membership {
        assert!(heartbeat_interval_ms > 0);
        Membership {
            member_id: String::new(),
            generation_id: -1,
            state: MemberState::Unjoined,
            heartbeat_interval_ms,
            last_heartbeat_ms: 0,
        }
    }

    /// A JoinGroup answer. `Continue`: joined (sync next).
    pub fn on_join(&mut self, r: &JoinResult) -> Action {
        match r.error_code {
            errors::NONE if r.member_id.is_empty() || r.generation_id < 0 => Action::Fail,
            errors::NONE => {
                self.member_id = r.member_id.clone();
                self.generation_id = r.generation_id;
                self.state = MemberState::Unjoined;
                Action::Continue
            }
            // KIP-394: retry with the id the coordinator handed out.
            errors::MEMBER_ID_REQUIRED => {
                self.member_id = r.member_id.clone();
                Action::Rejoin
            }
            _ => self.on_error(r.error_code),
        }
    }

    /// SyncGroup succeeded: the member is stable; heartbeats are timed from `now_ms`.
    pub fn on_synced(&mut self, now_ms: u64) {
        assert!(self.generation_id >= 0 && !self.member_id.is_empty());
        self.state = MemberState::Stable;
        self.last_heartbeat_ms = now_ms;
    }

    /// The error code of a SyncGroup, Heartbeat or OffsetCommit answer.
    pub fn on_error(&mut self, code: i16) -> Action {
        match code {
            errors::NONE => Action::Continue,
            errors::REBALANCE_IN_PROGRESS => {
                self.state = MemberState::Unjoined;
                Action::Rejoin
            }
            errors::ILLEGAL_GENERATION => {
                self.state = MemberState::Unjoined;
                self.generation_id = -1;
                Action::Rejoin
            }
            errors::UNKNOWN_MEMBER_ID => {
                self.state = MemberState::Unjoined;
                self.generation_id = -1;
                self.member_id.clear();
                Action::Rejoin
            }
            errors::NOT_COORDINATOR
            | errors::COORDINATOR_NOT_AVAILABLE
            | errors::COORDINATOR_LOAD_IN_PROGRESS => {
                self.state = MemberState::Unjoined;
                Action::FindCoordinator
            }
            _ => Action::Fail,
        }
    }

    pub fn heartbeat_due(&self, now_ms: u64) -> bool {
        self.state == MemberState::Stable
            && now_ms >= self.last_heartbeat_ms + self.heartbeat_interval_ms
    }

    /// Ms until the next heartbeat is due (0 if due or not stable).
    pub fn heartbeat_in_ms(&self, now_ms: u64) -> u64 {
        if self.state != MemberState::Stable {
            return 0;
        }
        (self.last_heartbeat_ms + self.heartbeat_interval_ms).saturating_sub(now_ms)
    }

    pub fn heartbeat_sent(&mut self, now_ms: u64) {
        self.last_heartbeat_ms = now_ms;
    }
}

/// Group consumer settings.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub group: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval_ms: u64,
    /// Where to start a partition without a committed offset.
    pub reset: OffsetSpec,
    pub fetch: FetchOptions,
    /// Join attempts (each a JoinGroup+SyncGroup) before giving up.
    pub join_attempts_max: u32,
    pub retry_backoff: Duration,
}

impl GroupConfig {
    pub fn new(group: &str, topics: Vec<String>) -> GroupConfig {
        GroupConfig {
            group: group.to_string(),
            topics,
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            heartbeat_interval_ms: 3_000,
            reset: OffsetSpec::Latest,
            fetch: FetchOptions::default(),
            join_attempts_max: 50,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

type TopicPartition = (String, i32);

/// One member of a consumer group. Call [`GroupConsumer::poll`], hand out the records, then
/// [`GroupConsumer::consumed`] up to what was processed; [`GroupConsumer::commit`] commits
/// consumed positions; [`GroupConsumer::close`] commits and leaves.
#[derive(Debug)]
pub struct GroupConsumer {
    client: Client,
    config: GroupConfig,
    coordinator: Option<i32>,
    membership: Membership,
    assignment: Vec<TopicPartition>,
    positions: BTreeMap<TopicPartition, i64>,
    committed: BTreeMap<TopicPartition, i64>,
    high_watermarks: BTreeMap<TopicPartition, i64>,
    started: Instant,
}

impl GroupConsumer {
    pub fn new(client: Client, config: GroupConfig) -> Result<GroupConsumer> {
        if config.group.is_empty() || config.topics.is_empty() {
            return Err(ClientError::Invalid(
                "a group and topics are required".into(),
            ));
        }
        if config.heartbeat_interval_ms == 0
            || config.heartbeat_interval_ms >= config.session_timeout_ms.max(0) as u64
        {
            return Err(ClientError::Invalid(format!(
                "heartbeat interval {} ms must be in 1..session timeout {} ms",
                config.heartbeat_interval_ms, config.session_timeout_ms
            )));
        }
        Ok(GroupConsumer {
            client,
            membership: Membership::new(config.heartbeat_interval_ms),
            config,
            coordinator: None,
            assignment: Vec::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
            started: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The assigned partitions (valid once joined).
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assignment
    }

    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }

    fn coordinator(&mut self) -> Result<i32> {
        if let Some(c) = self.coordinator {
            return Ok(c);
        }
        let c = self.client.coordinator_id(&self.config.group)?;
        self.coordinator = Some(c);
        Ok(c)
    }

    fn kafka_error(&self, code: i16, what: &str) -> ClientError {
        ClientError::Kafka {
            code,
            context: format!("{what} (group {})", self.config.group),
            message: None,
        }
    }

    /// Joins (or rejoins) the group and loads the positions of the new assignment.
    pub fn join(&mut self) -> Result<()> {
        let mut last: Option<ClientError> = None;
        for attempt in 0..self.config.join_attempts_max {
            if attempt > 0 && last.is_some() {
                std::thread::sleep(self.config.retry_backoff);
            }
            match self.join_once() {
                Ok(true) => return Ok(()),
                Ok(false) => last = None,
                Err(e) if e.is_retriable() => {
                    log::debug!("group {}: join attempt failed: {e}", self.config.group);
                    self.coordinator = None;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            ClientError::Protocol(format!(
                "group {}: not joined after {} attempts",
                self.config.group, self.config.join_attempts_max
            ))
        }))
    }

    /// One JoinGroup+SyncGroup round: Ok(true) joined, Ok(false) retry now.
    /// A join or sync answer's `action`: Ok(true) goes on, Ok(false) ends this join attempt
    /// (FindCoordinator first forgets the coordinator and backs off), Fail is `fail`'s error.
    fn join_step(
        &mut self,
        action: Action,
        fail: impl FnOnce(&Self) -> ClientError,
    ) -> Result<bool> {
        match action {
            Action::Continue => Ok(true),
            Action::Rejoin => Ok(false),
            Action::FindCoordinator => {
                self.coordinator = None;
                std::thread::sleep(self.config.retry_backoff);
                Ok(false)
            }
            Action::Fail => Err(fail(self)),
        }
    }

    fn join_once(&mut self) -> Result<bool> {
        let coordinator = self.coordinator()?;
        let metadata = Subscription {
            topics: self.config.topics.clone(),
            user_data: None,
        }
        .encode()?;
        let r = self.client.join_group(
            coordinator,
            &JoinParams {
                group: &self.config.group,
                member_id: &self.membership.member_id,
                session_timeout_ms: self.config.session_timeout_ms,
                rebalance_timeout_ms: self.config.rebalance_timeout_ms,
                protocol_type: PROTOCOL_TYPE,
                protocols: vec![(PROTOCOL_RANGE.to_string(), metadata)],
            },
        )?;
        let action = self.membership.on_join(&r);
        let go_on = self.join_step(action, |c| {
            if r.error_code == errors::NONE {
                ClientError::Protocol(format!(
                    "group {}: JoinGroup answer without member id or generation",
                    c.config.group
                ))
            } else {
                c.kafka_error(r.error_code, "join")
            }
        })?;
        if !go_on {
            return Ok(false);
        }
        let protocol = r
            .protocol_name
            .clone()
            .unwrap_or_else(|| PROTOCOL_RANGE.to_string());
        if protocol != PROTOCOL_RANGE {
            return Err(ClientError::Protocol(format!(
                "group {} chose protocol {protocol}, this member only knows range",
                self.config.group
            )));
        }
        let assignments = if r.leader == r.member_id {
            self.assign(&r.members)?
        } else {
            Vec::new()
        };
        let wait = Duration::from_millis(self.config.rebalance_timeout_ms.max(0) as u64);
        let (code, bytes) = self.client.sync_group(
            coordinator,
            &self.config.group,
            self.membership.generation_id,
            &self.membership.member_id,
            (PROTOCOL_TYPE, PROTOCOL_RANGE),
            &assignments,
            wait,
        )?;
        let action = self.membership.on_error(code);
        if !self.join_step(action, |c| c.kafka_error(code, "sync"))? {
            return Ok(false);
        }
        let assignment = Assignment::decode(bytes)?;
        let now = self.now_ms();
        self.membership.on_synced(now);
        self.set_assignment(assignment)?;
        log::info!(
            "group {}: generation {} member {}{}: assigned {:?}",
            self.config.group,
            self.membership.generation_id,
            self.membership.member_id,
            if r.leader == r.member_id {
                " (leader)"
            } else {
                ""
            },
            self.assignment
        );
        Ok(true)
    }

    /// The leader's range assignment of the members' subscriptions.
    fn assign(&mut self, members: &[(String, Bytes)]) -> Result<Vec<(String, Bytes)>> {
        let mut subscriptions = Vec::with_capacity(members.len());
        for (id, metadata) in members {
            subscriptions.push((id.clone(), Subscription::decode(metadata.clone())?));
        }
        let mut counts = BTreeMap::new();
        for (_, s) in &subscriptions {
            for t in &s.topics {
                if counts.contains_key(t) {
                    continue;
                }
                match self.client.topic(t) {
                    Ok(info) => {
                        counts.insert(t.clone(), info.partitions.len() as i32);
                    }
                    Err(ClientError::UnknownTopic(_)) => {
                        log::warn!("group {}: unknown topic {t}", self.config.group)
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        range_assign(&subscriptions, &counts)
            .into_iter()
            .map(|(id, a)| Ok((id, a.encode()?)))
            .collect()
    }

    /// Starts each assigned partition at its committed offset, else at the reset policy.
    fn set_assignment(&mut self, assignment: Assignment) -> Result<()> {
        self.assignment = assignment
            .partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        self.positions.clear();
        self.committed.clear();
        self.high_watermarks.clear();
        for (topic, partitions) in &assignment.partitions {
            let committed = self.client.committed_offsets(&self.config.group, topic)?;
            let mut missing = Vec::new();
            for &p in partitions {
                match committed.iter().find(|c| c.partition == p) {
                    Some(c) if c.offset >= 0 => {
                        self.positions.insert((topic.clone(), p), c.offset);
                        self.committed.insert((topic.clone(), p), c.offset);
                    }
                    _ => missing.push(p),
                }
            }
            if !missing.is_empty() {
                for o in self
                    .client
                    .list_offsets(topic, &missing, self.config.reset)?
                {
                    self.positions
                        .insert((topic.clone(), o.partition), o.offset);
                }
            }
        }
        Ok(())
    }

    /// Heartbeats if due; rejoins when the group rebalances.
    fn keep_alive(&mut self) -> Result<()> {
        let now = self.now_ms();
        if self.membership.heartbeat_due(now) {
            let coordinator = self.coordinator()?;
            let code = match self.client.heartbeat(
                coordinator,
                &self.config.group,
                self.membership.generation_id,
                &self.membership.member_id,
            ) {
                Ok(code) => code,
                Err(e) if e.is_retriable() => {
                    log::debug!("group {}: heartbeat failed: {e}", self.config.group);
                    self.coordinator = None;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            self.membership.heartbeat_sent(now);
            match self.membership.on_error(code) {
                Action::Continue => {}
                Action::Rejoin => {
                    log::info!(
                        "group {}: {} on heartbeat, rejoining",
                        self.config.group,
                        errors::name(code)
                    );
                    // Commit what was consumed while this generation may still accept it.
                    if code == errors::REBALANCE_IN_PROGRESS {
                        self.commit()?;
                    }
                }
                Action::FindCoordinator => self.coordinator = None,
                Action::Fail => return Err(self.kafka_error(code, "heartbeat")),
            }
        }
        if self.membership.state == MemberState::Unjoined {
            self.join()?;
        }
        Ok(())
    }

    /// Fetches from the assigned partitions at their positions (joining first if needed).
    /// Records stay unconsumed until [`GroupConsumer::consumed`].
    pub fn poll(&mut self) -> Result<Vec<(String, PartitionFetch)>> {
        self.keep_alive()?;
        let heartbeat_in = self.membership.heartbeat_in_ms(self.now_ms());
        let mut options = self.config.fetch;
        options.max_wait_ms = options
            .max_wait_ms
            .min(heartbeat_in.min(i32::MAX as u64) as i32)
            .max(0);
        if self.assignment.is_empty() {
            std::thread::sleep(Duration::from_millis(options.max_wait_ms as u64));
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for topic in self.config.topics.clone() {
            let positions: Vec<(i32, i64)> = self
                .positions
                .iter()
                .filter(|((t, _), _)| *t == topic)
                .map(|((_, p), o)| (*p, *o))
                .collect();
            if positions.is_empty() {
                continue;
            }
            for pf in self.client.fetch(&topic, &positions, options)? {
                let key = (topic.clone(), pf.partition);
                match pf.error_code {
                    errors::NONE => {
                        self.high_watermarks.insert(key, pf.high_watermark);
                        out.push((topic.clone(), pf));
                    }
                    errors::OFFSET_OUT_OF_RANGE => {
                        let o =
                            self.client
                                .list_offsets(&topic, &[pf.partition], self.config.reset)?;
                        log::warn!(
                            "{topic}-{}: offset {:?} out of range, reset to {}",
                            pf.partition,
                            self.positions.get(&key),
                            o[0].offset
                        );
                        self.positions.insert(key, o[0].offset);
                    }
                    code if errors::is_retriable(code) => {
                        log::debug!("{topic}-{}: {}", pf.partition, errors::name(code));
                        std::thread::sleep(self.config.retry_backoff);
                    }
                    code => {
                        return Err(ClientError::Kafka {
                            code,
                            context: format!("fetch {topic}-{}", pf.partition),
                            message: None,
                        })
                    }
                }
            }
        }
        Ok(out)
    }

    /// Marks records before `next_offset` of a partition as processed (ignored for a partition
    /// no longer assigned).
    pub fn consumed(&mut self, topic: &str, partition: i32, next_offset: i64) {
        if let Some(p) = self.positions.get_mut(&(topic.to_string(), partition)) {
            assert!(next_offset >= *p, "positions only move forward");
            *p = next_offset;
        }
    }

    /// Every assigned partition was read up to its high watermark (as of the last fetch).
    pub fn at_end(&self) -> bool {
        self.membership.state == MemberState::Stable
            && self
                .positions
                .iter()
                .all(|(k, pos)| self.high_watermarks.get(k).is_some_and(|hw| *pos >= *hw))
    }

    /// Commits consumed positions that moved. A rebalance answer marks the member for
    /// rejoining (the commit is lost; those records may be read again: at-least-once).
    pub fn commit(&mut self) -> Result<()> {
        let offsets: Vec<(String, i32, i64)> = self
            .positions
            .iter()
            .filter(|(k, o)| self.committed.get(*k) != Some(*o))
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect();
        if offsets.is_empty() || self.membership.generation_id < 0 {
            return Ok(());
        }
        let coordinator = self.coordinator()?;
        let code = self.client.commit_offsets(
            coordinator,
            &self.config.group,
            self.membership.generation_id,
            &self.membership.member_id,
            &offsets,
        )?;
        if code == errors::NONE {
            for (t, p, o) in offsets {
                self.committed.insert((t, p), o);
            }
            return Ok(());
        }
        match self.membership.on_error(code) {
            Action::Continue => unreachable!("code is not NONE"),
            Action::Rejoin | Action::FindCoordinator => {
                log::warn!(
                    "group {}: commit failed with {}, rejoining",
                    self.config.group,
                    errors::name(code)
                );
                if self.membership.state == MemberState::Unjoined {
                    self.coordinator = None;
                }
                Ok(())
            }
            Action::Fail => Err(self.kafka_error(code, "commit")),
        }
    }

    /// Commits and leaves the group (its partitions move to the others at once).
    pub fn close(mut self) -> Result<()> {
        let committed = self.commit();
        if !self.membership.member_id.is_empty() {
            let coordinator = self.coordinator()?;
            let member_id = self.membership.member_id.clone();
            self.client
                .leave_group(coordinator, &self.config.group, &member_id)?;
        }
        committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(code: i16, member: &str, generation: i32) -> JoinResult {
        JoinResult {
            error_code: code,
            generation_id: generation,
            protocol_name: Some(PROTOCOL_RANGE.into()),
            leader: member.into(),
            member_id: member.into(),
            members: Vec::new(),
        }
    }

    #[test]
    fn member_id_required_then_join_then_stable() {
        let mut m = Membership::new(1000);
        assert_eq!(
            m.on_join(&join(errors::MEMBER_ID_REQUIRED, "m-1", -1)),
            Action::Rejoin
        );
        assert_eq!(m.member_id, "m-1");
        assert_eq!(m.state, MemberState::Unjoined);
        assert_eq!(m.on_join(&join(errors::NONE, "", 3)), Action::Fail);
        assert_eq!(m.on_join(&join(errors::NONE, "m-1", -1)), Action::Fail);
        assert_eq!(m.on_join(&join(errors::NONE, "m-1", 3)), Action::Continue);
        assert_eq!(m.generation_id, 3);
        assert!(!m.heartbeat_due(10_000), "no heartbeats before sync");
        m.on_synced(500);
        assert_eq!(m.state, MemberState::Stable);
        assert!(!m.heartbeat_due(1499));
        assert_eq!(m.heartbeat_in_ms(1200), 300);
        assert!(m.heartbeat_due(1500));
        m.heartbeat_sent(1500);
        assert!(!m.heartbeat_due(1600));
    }

    #[test]
    fn fencing_errors_force_rejoin() {
        let stable = || {
            let mut m = Membership::new(1000);
            m.on_join(&join(errors::NONE, "m", 5));
            m.on_synced(0);
            m
        };
        let mut m = stable();
        assert_eq!(m.on_error(errors::REBALANCE_IN_PROGRESS), Action::Rejoin);
        assert_eq!((m.member_id.as_str(), m.generation_id), ("m", 5));
        assert_eq!(m.state, MemberState::Unjoined);
        assert!(!m.heartbeat_due(u64::MAX / 2));

        let mut m = stable();
        assert_eq!(m.on_error(errors::ILLEGAL_GENERATION), Action::Rejoin);
        assert_eq!((m.member_id.as_str(), m.generation_id), ("m", -1));

        let mut m = stable();
        assert_eq!(m.on_error(errors::UNKNOWN_MEMBER_ID), Action::Rejoin);
        assert_eq!((m.member_id.as_str(), m.generation_id), ("", -1));

        let mut m = stable();
        assert_eq!(m.on_error(errors::NOT_COORDINATOR), Action::FindCoordinator);
        assert_eq!(m.state, MemberState::Unjoined);

        let mut m = stable();
        assert_eq!(m.on_error(errors::NONE), Action::Continue);
        assert_eq!(m.state, MemberState::Stable);
        assert_eq!(m.on_error(errors::GROUP_AUTHORIZATION_FAILED), Action::Fail);
        assert_eq!(
            m.on_join(&join(errors::INCONSISTENT_GROUP_PROTOCOL, "", -1)),
            Action::Fail
        );
    }
}
