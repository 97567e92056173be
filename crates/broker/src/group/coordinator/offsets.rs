//! OffsetCommit, OffsetFetch and OffsetDelete.

use super::*;

impl Coordinator {
    // ----- Offsets ---------------------------------------------------------------------------

    pub fn commit(&mut self, now_ms: i64, req: CommitRequest, ticket: Ticket) -> Effects {
        let mut fx = Effects::default();
        let n = req.offsets.len();
        let reject = |fx: &mut Effects, code: i16| fx.reply(ticket, Reply::Commit(vec![code; n]));
        if req.group_id.is_empty() {
            reject(&mut fx, e::INVALID_GROUP_ID);
            return fx;
        }
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                reject(&mut fx, e::ILLEGAL_GENERATION);
                return fx;
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let group = self.groups.get_mut(&req.group_id).expect("present");
        let code = if group.state == GroupState::Dead {
            Some(e::COORDINATOR_NOT_AVAILABLE)
        } else if group.is_static_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            Some(e::FENCED_INSTANCE_ID)
        } else if req.generation_id < 0 && group.state == GroupState::Empty {
            None // Offsets only: the group does not use group management.
        } else if !group.members.contains_key(&req.member_id) {
            Some(e::UNKNOWN_MEMBER_ID)
        } else if req.generation_id != group.generation_id {
            Some(e::ILLEGAL_GENERATION)
        } else {
            match group.state {
                GroupState::CompletingRebalance => Some(e::REBALANCE_IN_PROGRESS),
                GroupState::Stable | GroupState::PreparingRebalance => {
                    let m = group.members.get_mut(&req.member_id).expect("member");
                    m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                    None
                }
                GroupState::Empty | GroupState::Dead => Some(e::UNKNOWN_MEMBER_ID),
            }
        };
        if let Some(code) = code {
            reject(&mut fx, code);
            return fx;
        }
        let mut offsets = Vec::new();
        let mut errors = Vec::with_capacity(n);
        let mut records = Vec::new();
        for o in req.offsets {
            if o.metadata
                .as_ref()
                .is_some_and(|m| m.len() > self.config.offset_metadata_bytes_max)
            {
                errors.push(Some(e::OFFSET_METADATA_TOO_LARGE));
                continue;
            }
            let value = OffsetValue {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata,
                commit_timestamp_ms: now_ms,
                expire_timestamp_ms: req
                    .retention_ms
                    .filter(|r| *r >= 0)
                    .map(|r| now_ms.saturating_add(r)),
            };
            records.push(GroupRecord::Offset {
                group_id: req.group_id.clone(),
                topic: o.topic.clone(),
                partition: o.partition,
                value: Some(value.clone()),
            });
            offsets.push((o.topic, o.partition, value));
            errors.push(None);
        }
        if records.is_empty() {
            fx.reply(
                ticket,
                Reply::Commit(errors.into_iter().map(|c| c.unwrap_or(e::NONE)).collect()),
            );
            return fx;
        }
        fx.writes.push(Write {
            records,
            then: Some(AfterWrite::OffsetsStored {
                group_id: req.group_id,
                ticket,
                offsets,
                errors,
            }),
        });
        fx
    }

    /// Committed offsets of `group_id`: the requested partitions, or all (`topics == None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<FetchedTopic> {
        let group = self.groups.get(group_id);
        let lookup = |topic: &str, partition: i32| -> FetchedPartition {
            match group.and_then(|g| g.offsets.get(&(topic.to_string(), partition))) {
                Some(v) => FetchedPartition {
                    partition,
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata.clone(),
                    error: e::NONE,
                },
                None => FetchedPartition {
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    error: e::NONE,
                },
            }
        };
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(t, ps)| FetchedTopic {
                    topic: t.clone(),
                    partitions: ps.iter().map(|p| lookup(t, *p)).collect(),
                })
                .collect(),
            None => {
                let mut out: Vec<FetchedTopic> = Vec::new();
                if let Some(g) = group {
                    for (topic, partition) in g.offsets.keys() {
                        if out.last().is_none_or(|t| &t.topic != topic) {
                            out.push(FetchedTopic {
                                topic: topic.clone(),
                                partitions: Vec::new(),
                            });
                        }
                        out.last_mut()
                            .expect("pushed")
                            .partitions
                            .push(lookup(topic, *partition));
                    }
                }
                out
            }
        }
    }

    /// OffsetDelete: offsets of topics the group is not consuming (any, when it is empty).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        ticket: Ticket,
    ) -> Effects {
        let mut fx = Effects::default();
        let n = partitions.len();
        let Some(group) = self.groups.get_mut(group_id) else {
            fx.reply(
                ticket,
                Reply::OffsetDelete(e::GROUP_ID_NOT_FOUND, vec![e::NONE; n]),
            );
            return fx;
        };
        let subscribed = match group.state {
            GroupState::Dead => {
                fx.reply(
                    ticket,
                    Reply::OffsetDelete(e::GROUP_ID_NOT_FOUND, vec![e::NONE; n]),
                );
                return fx;
            }
            GroupState::Empty => None,
            _ if group.protocol_type.as_deref() == Some(PROTOCOL_TYPE_CONSUMER) => {
                // Unknown subscriptions count as subscribed to everything.
                Some(group.subscribed_topics())
            }
            _ => {
                fx.reply(
                    ticket,
                    Reply::OffsetDelete(e::NON_EMPTY_GROUP, vec![e::NONE; n]),
                );
                return fx;
            }
        };
        let mut errors = Vec::with_capacity(n);
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            let busy = match &subscribed {
                None => false,
                Some(None) => true,
                Some(Some(topics)) => topics.contains(topic),
            };
            if busy {
                errors.push(e::GROUP_SUBSCRIBED_TO_TOPIC);
                continue;
            }
            if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                records.push(GroupRecord::Offset {
                    group_id: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                });
            }
            errors.push(e::NONE);
        }
        let reply = Reply::OffsetDelete(e::NONE, errors);
        if records.is_empty() {
            fx.reply(ticket, reply);
        } else {
            fx.writes.push(Write {
                records,
                then: Some(AfterWrite::Reply { ticket, reply }),
            });
        }
        fx
    }
}
