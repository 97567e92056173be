//! Group membership calls (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! DeleteGroups) and the consumer protocol's embedded bytes: ConsumerProtocolSubscription and
//! ConsumerProtocolAssignment (v0 written, v0+ read), plus the range assignor.
//!
//! Membership calls return the broker's error code instead of failing on it: the member state
//! machine ([`super::group_consumer::Membership`]) decides what a code means.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{check, Client, ClientError, Result};
use shoal_protocol::request::Request;
use shoal_protocol::response::Response;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Limits on decoded consumer-protocol bytes (they come from other clients).
pub const PROTOCOL_TOPICS_MAX: usize = 10_000;
pub const PROTOCOL_PARTITIONS_MAX: usize = 1_000_000;

/// ConsumerProtocolSubscription: the topics a member wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
}

/// ConsumerProtocolAssignment: the partitions a member got, per topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub partitions: Vec<(String, Vec<i32>)>,
    pub user_data: Option<Bytes>,
}

fn put_string(buf: &mut BytesMut, s: &str) -> Result<()> {
    let len = i16::try_from(s.len())
        .map_err(|_| ClientError::Invalid(format!("string of {} bytes", s.len())))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn put_bytes(buf: &mut BytesMut, b: &Option<Bytes>) -> Result<()> {
    match b {
        None => buf.put_i32(-1),
        Some(b) => {
            let len = i32::try_from(b.len())
                .map_err(|_| ClientError::Invalid(format!("bytes of {} bytes", b.len())))?;
            buf.put_i32(len);
            buf.put_slice(b);
        }
    }
    Ok(())
}

/// A bounds-checked reader over consumer-protocol bytes.
struct Reader {
    buf: Bytes,
    what: &'static str,
}

impl Reader {
    fn short(&self) -> ClientError {
        ClientError::Protocol(format!("{}: truncated", self.what))
    }
    fn i16(&mut self) -> Result<i16> {
        if self.buf.remaining() < 2 {
            return Err(self.short());
        }
        Ok(self.buf.get_i16())
    }
    fn i32(&mut self) -> Result<i32> {
        if self.buf.remaining() < 4 {
            return Err(self.short());
        }
        Ok(self.buf.get_i32())
    }
    fn count(&mut self, max: usize) -> Result<usize> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n > max {
            return Err(ClientError::Protocol(format!(
                "{}: array of {n} > {max}",
                self.what
            )));
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String> {
        let len = self.i16()?;
        if len < 0 || self.buf.remaining() < len as usize {
            return Err(ClientError::Protocol(format!("{}: bad string", self.what)));
        }
        let b = self.buf.split_to(len as usize);
        String::from_utf8(b.to_vec())
            .map_err(|_| ClientError::Protocol(format!("{}: string not UTF-8", self.what)))
    }
    fn bytes(&mut self) -> Result<Option<Bytes>> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        if self.buf.remaining() < len as usize {
            return Err(self.short());
        }
        Ok(Some(self.buf.split_to(len as usize)))
    }
}

impl Subscription {
    pub fn encode(&self) -> Result<Bytes> {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        buf.put_i32(self.topics.len() as i32);
        for t in &self.topics {
            put_string(&mut buf, t)?;
        }
        put_bytes(&mut buf, &self.user_data)?;
        Ok(buf.freeze())
    }

    /// Reads v0 and the v0 prefix of later versions (owned partitions etc. are ignored).
    pub fn decode(bytes: Bytes) -> Result<Subscription> {
        let mut r = Reader {
            buf: bytes,
            what: "consumer subscription",
        };
        let version = r.i16()?;
        if version < 0 {
            return Err(ClientError::Protocol(format!(
                "consumer subscription version {version}"
            )));
        }
        let n = r.count(PROTOCOL_TOPICS_MAX)?;
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            topics.push(r.string()?);
        }
        let user_data = r.bytes()?;
        Ok(Subscription { topics, user_data })
    }
}

impl Assignment {
    pub fn encode(&self) -> Result<Bytes> {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        buf.put_i32(self.partitions.len() as i32);
        for (t, ps) in &self.partitions {
            put_string(&mut buf, t)?;
            buf.put_i32(ps.len() as i32);
            for p in ps {
                buf.put_i32(*p);
            }
        }
        put_bytes(&mut buf, &self.user_data)?;
        Ok(buf.freeze())
    }

    /// An empty buffer is an empty assignment (what the coordinator sends members it got
    /// nothing for).
    pub fn decode(bytes: Bytes) -> Result<Assignment> {
        if bytes.is_empty() {
            return Ok(Assignment::default());
        }
        let mut r = Reader {
            buf: bytes,
            what: "consumer assignment",
        };
        let version = r.i16()?;
        if version < 0 {
            return Err(ClientError::Protocol(format!(
                "consumer assignment version {version}"
            )));
        }
        let n = r.count(PROTOCOL_TOPICS_MAX)?;
        let mut partitions = Vec::with_capacity(n);
        let mut total = 0usize;
        for _ in 0..n {
            let topic = r.string()?;
            let m = r.count(PROTOCOL_PARTITIONS_MAX)?;
            total += m;
            if total > PROTOCOL_PARTITIONS_MAX {
                return Err(ClientError::Protocol(format!(
                    "consumer assignment: more than {PROTOCOL_PARTITIONS_MAX} partitions"
                )));
            }
            let mut ps = Vec::with_capacity(m);
            for _ in 0..m {
                ps.push(r.i32()?);
            }
            partitions.push((topic, ps));
        }
        let user_data = r.bytes()?;
        Ok(Assignment {
            partitions,
            user_data,
        })
    }
}

/// Kafka's RangeAssignor: for each topic, its subscribers sorted by member id get consecutive
/// ranges of partitions; the first `partitions % members` get one extra. Every member appears
/// in the result (possibly with nothing). Topics missing from `partition_counts` are skipped.
pub fn range_assign(
    members: &[(String, Subscription)],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(id, _)| (id.clone(), Assignment::default()))
        .collect();
    let topics: BTreeSet<&String> = members.iter().flat_map(|(_, s)| &s.topics).collect();
    for topic in topics {
        let Some(&count) = partition_counts.get(topic) else {
            continue;
        };
        let mut subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(topic))
            .map(|(id, _)| id)
            .collect();
        subscribers.sort();
        subscribers.dedup();
        let n = subscribers.len() as i32;
        assert!(n > 0, "a topic comes from some subscription");
        let count = count.max(0);
        let per = count / n;
        let extra = count % n;
        let mut next = 0;
        for (i, id) in subscribers.into_iter().enumerate() {
            let len = per + i32::from((i as i32) < extra);
            if len > 0 {
                let a = out.get_mut(id).expect("every member is in the map");
                a.partitions
                    .push((topic.clone(), (next..next + len).collect()));
            }
            next += len;
        }
        assert_eq!(next, count, "range assignment covers every partition");
    }
    out
}

/// What JoinGroup answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, protocol metadata); only the leader gets them.
    pub members: Vec<(String, Bytes)>,
}

/// One JoinGroup request.
#[derive(Debug, Clone)]
pub struct JoinParams<'a> {
    pub group: &'a str,
    pub member_id: &'a str,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: &'a str,
    /// (protocol name, metadata), by preference.
    pub protocols: Vec<(String, Bytes)>,
}

/// DeleteGroups' answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOutcome {
    pub group_id: String,
    pub error_code: i16,
}

impl Client {
    /// The coordinator's node id for `group`, learning its address if metadata lacked it.
    pub fn coordinator_id(&mut self, group: &str) -> Result<i32> {
        let info = self.find_coordinator(group)?;
        let id = info.node_id;
        let known = self
            .brokers
            .get(&id)
            .is_some_and(|b| b.host == info.host && b.port == info.port);
        if !known {
            self.connections.remove(&id);
            self.brokers.insert(id, info);
        }
        Ok(id)
    }

    fn version_on(&mut self, node: i32, api_key: ApiKey) -> Result<i16> {
        self.connection(node)?.version_for(api_key)
    }

    /// JoinGroup; the broker holds it until the rebalance completes (up to the rebalance
    /// timeout), so the read timeout is extended by that.
    pub fn join_group(&mut self, coordinator: i32, p: &JoinParams) -> Result<JoinResult> {
        let request = Request::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(GroupId(sb(p.group)))
                .with_session_timeout_ms(p.session_timeout_ms)
                .with_rebalance_timeout_ms(p.rebalance_timeout_ms)
                .with_member_id(sb(p.member_id))
                .with_protocol_type(sb(p.protocol_type))
                .with_protocols(
                    p.protocols
                        .iter()
                        .map(|(name, metadata)| {
                            join_group_request::JoinGroupRequestProtocol::default()
                                .with_name(sb(name))
                                .with_metadata(metadata.clone())
                        })
                        .collect(),
                ),
        );
        let wait = Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64);
        let (_, response) = self.send_to(coordinator, &request, wait)?;
        let Response::JoinGroup(r) = response else {
            unreachable!("response kind matches request")
        };
        Ok(JoinResult {
            error_code: r.error_code,
            generation_id: r.generation_id,
            protocol_name: r.protocol_name.map(|s| s.to_string()),
            leader: r.leader.to_string(),
            member_id: r.member_id.to_string(),
            members: r
                .members
                .into_iter()
                .map(|m| (m.member_id.to_string(), m.metadata))
                .collect(),
        })
    }

    /// SyncGroup: the leader sends `assignments`, others an empty list. Returns the error code
    /// and this member's assignment bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn sync_group(
        &mut self,
        coordinator: i32,
        group: &str,
        generation_id: i32,
        member_id: &str,
        protocol: (&str, &str),
        assignments: &[(String, Bytes)],
        wait: Duration,
    ) -> Result<(i16, Bytes)> {
        let version = self.version_on(coordinator, ApiKey::SyncGroup)?;
        let mut request = SyncGroupRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_generation_id(generation_id)
            .with_member_id(sb(member_id))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(id, a)| {
                        sync_group_request::SyncGroupRequestAssignment::default()
                            .with_member_id(sb(id))
                            .with_assignment(a.clone())
                    })
                    .collect(),
            );
        if version >= 5 {
            request.protocol_type = Some(sb(protocol.0));
            request.protocol_name = Some(sb(protocol.1));
        }
        let (_, response) = self.send_to(coordinator, &Request::SyncGroup(request), wait)?;
        let Response::SyncGroup(r) = response else {
            unreachable!()
        };
        Ok((r.error_code, r.assignment))
    }

    /// Heartbeat; returns the error code.
    pub fn heartbeat(
        &mut self,
        coordinator: i32,
        group: &str,
        generation_id: i32,
        member_id: &str,
    ) -> Result<i16> {
        let request = Request::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_generation_id(generation_id)
                .with_member_id(sb(member_id)),
        );
        let (_, response) = self.send_to(coordinator, &request, Duration::ZERO)?;
        let Response::Heartbeat(r) = response else {
            unreachable!()
        };
        Ok(r.error_code)
    }

    /// LeaveGroup for one member (v0-2 single member id, v3+ member list).
    pub fn leave_group(&mut self, coordinator: i32, group: &str, member_id: &str) -> Result<()> {
        let version = self.version_on(coordinator, ApiKey::LeaveGroup)?;
        let mut request = LeaveGroupRequest::default().with_group_id(GroupId(sb(group)));
        if version >= 3 {
            request.members =
                vec![leave_group_request::MemberIdentity::default().with_member_id(sb(member_id))];
        } else {
            request.member_id = sb(member_id);
        }
        let (_, response) =
            self.send_to(coordinator, &Request::LeaveGroup(request), Duration::ZERO)?;
        let Response::LeaveGroup(r) = response else {
            unreachable!()
        };
        check(r.error_code, || format!("leave group {group}"), None)?;
        for m in &r.members {
            check(
                m.error_code,
                || format!("leave group {group} as {}", m.member_id),
                None,
            )?;
        }
        Ok(())
    }

    /// OffsetCommit of `offsets` (topic, partition, offset). `generation_id` -1 and empty
    /// `member_id` commit for a group without members (admin tools). Returns the first
    /// per-partition error code (NONE if all succeeded).
    pub fn commit_offsets(
        &mut self,
        coordinator: i32,
        group: &str,
        generation_id: i32,
        member_id: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<i16> {
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for (t, p, o) in offsets {
            by_topic.entry(t.as_str()).or_default().push((*p, *o));
        }
        let request = Request::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_generation_id_or_member_epoch(generation_id)
                .with_member_id(sb(member_id))
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| {
                            offset_commit_request::OffsetCommitRequestTopic::default()
                                .with_name(TopicName(sb(t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, o)| {
                                            offset_commit_request::OffsetCommitRequestPartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        );
        let (_, response) = self.send_to(coordinator, &request, Duration::ZERO)?;
        let Response::OffsetCommit(r) = response else {
            unreachable!()
        };
        let mut answered = 0;
        for p in r.topics.iter().flat_map(|t| &t.partitions) {
            answered += 1;
            if p.error_code != 0 {
                return Ok(p.error_code);
            }
        }
        if answered != offsets.len() {
            return Err(ClientError::Protocol(format!(
                "OffsetCommit: {answered} partitions answered, {} sent",
                offsets.len()
            )));
        }
        Ok(0)
    }

    /// DeleteGroups, each group asked of its coordinator. Per-group outcomes.
    pub fn delete_groups(&mut self, groups: &[String]) -> Result<Vec<GroupOutcome>> {
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let coordinator = self.coordinator_id(group)?;
            let request = Request::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]),
            );
            let (_, response) = self.send_to(coordinator, &request, Duration::ZERO)?;
            let Response::DeleteGroups(r) = response else {
                unreachable!()
            };
            let result = r
                .results
                .iter()
                .find(|g| g.group_id.0.as_str() == group)
                .ok_or_else(|| ClientError::Protocol(format!("DeleteGroups: no {group}")))?;
            out.push(GroupOutcome {
                group_id: group.clone(),
                error_code: result.error_code,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(topics: &[&str]) -> Subscription {
        Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            user_data: None,
        }
    }

    #[test]
    fn subscription_round_trip_and_v0_bytes() {
        let s = sub(&["ab"]);
        let b = s.encode().unwrap();
        // version 0, 1 topic, "ab", null user data.
        assert_eq!(
            &b[..],
            &[0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 255, 255, 255, 255]
        );
        assert_eq!(Subscription::decode(b).unwrap(), s);
    }

    #[test]
    fn subscription_later_version_prefix_is_read() {
        // v1 with owned partitions after user data: the v0 prefix is what we need.
        let mut b = BytesMut::from(&sub(&["t"]).encode().unwrap()[..]);
        b[1] = 1;
        b.put_i32(0);
        let s = Subscription::decode(b.freeze()).unwrap();
        assert_eq!(s.topics, vec!["t".to_string()]);
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        for bad in [
            &[][..],
            &[0, 0, 0, 0, 0, 5][..],
            &[0, 0, 0x7f, 0xff, 0xff, 0xff][..],
            &[0, 0, 0, 0, 0, 1, 0, 9, b'a'][..],
            &[0xff, 0xff][..],
        ] {
            assert!(Subscription::decode(Bytes::copy_from_slice(bad)).is_err());
            if !bad.is_empty() {
                assert!(Assignment::decode(Bytes::copy_from_slice(bad)).is_err());
            }
        }
    }

    #[test]
    fn assignment_round_trip() {
        let a = Assignment {
            partitions: vec![("t".into(), vec![0, 2]), ("u".into(), vec![1])],
            user_data: Some(Bytes::from_static(b"x")),
        };
        assert_eq!(Assignment::decode(a.encode().unwrap()).unwrap(), a);
        assert_eq!(
            Assignment::decode(Bytes::new()).unwrap(),
            Assignment::default()
        );
    }

    #[test]
    fn range_assignor_matches_kafka() {
        let members = vec![
            ("b".to_string(), sub(&["t", "u"])),
            ("a".to_string(), sub(&["t"])),
            ("c".to_string(), sub(&["t", "u"])),
        ];
        let counts = BTreeMap::from([("t".to_string(), 7), ("u".to_string(), 3)]);
        let out = range_assign(&members, &counts);
        assert_eq!(out["a"].partitions, vec![("t".into(), vec![0, 1, 2])]);
        assert_eq!(
            out["b"].partitions,
            vec![("t".into(), vec![3, 4]), ("u".into(), vec![0, 1])]
        );
        assert_eq!(
            out["c"].partitions,
            vec![("t".into(), vec![5, 6]), ("u".into(), vec![2])]
        );
    }

    #[test]
    fn range_assignor_more_members_than_partitions() {
        let members: Vec<_> = ["m1", "m2", "m3"]
            .iter()
            .map(|m| (m.to_string(), sub(&["t"])))
            .collect();
        let counts = BTreeMap::from([("t".to_string(), 2)]);
        let out = range_assign(&members, &counts);
        assert_eq!(out.len(), 3);
        assert_eq!(out["m1"].partitions, vec![("t".into(), vec![0])]);
        assert_eq!(out["m2"].partitions, vec![("t".into(), vec![1])]);
        assert!(out["m3"].partitions.is_empty());
        // Unknown topics are skipped.
        let out = range_assign(&members, &BTreeMap::new());
        assert!(out.values().all(|a| a.partitions.is_empty()));
    }

    #[test]
    fn range_assignor_covers_each_partition_once() {
        for members_n in 1..6 {
            for parts in 0..13 {
                let members: Vec<_> = (0..members_n)
                    .map(|i| (format!("m{i}"), sub(&["t"])))
                    .collect();
                let counts = BTreeMap::from([("t".to_string(), parts)]);
                let out = range_assign(&members, &counts);
                let mut all: Vec<i32> = out
                    .values()
                    .flat_map(|a| a.partitions.iter().flat_map(|(_, ps)| ps.clone()))
                    .collect();
                all.sort();
                assert_eq!(all, (0..parts).collect::<Vec<_>>());
                let sizes: Vec<usize> = out
                    .values()
                    .map(|a| a.partitions.iter().map(|(_, p)| p.len()).sum())
                    .collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(max - min <= 1);
            }
        }
    }
}
