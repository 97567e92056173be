//! ListGroups, DescribeGroups, DeleteGroups, timers and loading from the log.

use super::*;

impl Coordinator {
    // ----- Admin -----------------------------------------------------------------------------

    pub fn list_groups(&self) -> Vec<ListedGroup> {
        self.groups
            .values()
            .map(|g| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    pub fn describe(&self, group_id: &str) -> DescribedGroup {
        let Some(g) = self.groups.get(group_id) else {
            return DescribedGroup {
                error: e::NONE,
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                generation_id: -1,
                members: Vec::new(),
            };
        };
        // Like Kafka: member metadata and assignments only while Stable.
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        DescribedGroup {
            error: e::NONE,
            group_id: g.group_id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            generation_id: g.generation_id,
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// DeleteGroups for one group: only groups without members; offsets go with it.
    pub fn delete_group(&mut self, group_id: &str, ticket: Ticket) -> Effects {
        let mut fx = Effects::default();
        let code = match self.groups.get(group_id) {
            None => Some(e::GROUP_ID_NOT_FOUND),
            Some(g) if g.state == GroupState::Dead => Some(e::GROUP_ID_NOT_FOUND),
            Some(g) if g.state != GroupState::Empty || !g.members.is_empty() => {
                Some(e::NON_EMPTY_GROUP)
            }
            Some(_) => None,
        };
        if let Some(code) = code {
            fx.reply(ticket, Reply::Delete(code));
            return fx;
        }
        let group = self.groups.remove(group_id).expect("present");
        fx.writes.push(Write {
            records: tombstones(&group),
            then: Some(AfterWrite::Reply {
                ticket,
                reply: Reply::Delete(e::NONE),
            }),
        });
        fx
    }

    // ----- Timers ----------------------------------------------------------------------------

    /// Expires sessions, pending members, join and sync phases, and (periodically) offsets.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in &ids {
            let Some(group) = self.groups.get_mut(id) else {
                continue;
            };
            let before = group.pending_members.len();
            group
                .pending_members
                .retain(|_, deadline| now_ms < *deadline);
            let pending_expired = group.pending_members.len() != before;
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| !m.keep_alive(now_ms))
                .map(|m| m.member_id.clone())
                .collect();
            for member_id in expired {
                self.remove_member_and_update_group(now_ms, id, &member_id, &mut fx);
            }
            let group = self.groups.get_mut(id).expect("present");
            if matches!(
                group.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) && !group.pending_sync.is_empty()
                && now_ms >= group.sync_deadline_ms
            {
                // Members that never sent SyncGroup within the rebalance timeout.
                let laggards: Vec<String> = std::mem::take(&mut group.pending_sync)
                    .into_iter()
                    .collect();
                for member_id in laggards {
                    self.remove_member_and_update_group(now_ms, id, &member_id, &mut fx);
                }
            }
            let group = self.groups.get_mut(id).expect("present");
            if group.state == GroupState::PreparingRebalance
                && (pending_expired || now_ms >= group.join_deadline_ms)
            {
                self.try_complete_join(now_ms, id, &mut fx);
            }
        }
        if now_ms >= self.next_cleanup_ms {
            self.next_cleanup_ms = now_ms + self.config.offsets_retention_check_interval_ms;
            self.expire_offsets(now_ms, &mut fx);
        }
        fx
    }

    /// Kafka's offset expiry: all offsets of an empty group once it has been empty for the
    /// retention period; for a Stable consumer group, offsets of topics it no longer consumes;
    /// explicit per-commit expiry (OffsetCommit v2-4). Empty groups left without offsets go.
    pub fn expire_offsets(&mut self, now_ms: i64, fx: &mut Effects) {
        let retention = self.config.offsets_retention_ms;
        let mut dead = Vec::new();
        for group in self.groups.values_mut() {
            let subscribed = if group.state == GroupState::Stable {
                group.subscribed_topics()
            } else {
                None
            };
            let eligible = match group.state {
                GroupState::Empty => true,
                GroupState::Stable => subscribed.is_some(),
                _ => false,
            };
            if !eligible {
                continue;
            }
            let empty_since = if group.protocol_type.is_some() && group.state == GroupState::Empty {
                Some(group.state_timestamp_ms)
            } else {
                None
            };
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|((topic, _), v)| {
                    if subscribed.as_ref().is_some_and(|s| s.contains(topic)) {
                        return false;
                    }
                    match v.expire_timestamp_ms {
                        Some(at) => now_ms >= at,
                        None => {
                            let base = empty_since
                                .map_or(v.commit_timestamp_ms, |t| t.max(v.commit_timestamp_ms));
                            now_ms >= base.saturating_add(retention)
                        }
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut records = Vec::new();
            for (topic, partition) in expired {
                group.offsets.remove(&(topic.clone(), partition));
                records.push(GroupRecord::Offset {
                    group_id: group.group_id.clone(),
                    topic,
                    partition,
                    value: None,
                });
            }
            if group.state == GroupState::Empty
                && group.offsets.is_empty()
                && group.pending_members.is_empty()
            {
                records.push(GroupRecord::Group {
                    group_id: group.group_id.clone(),
                    value: None,
                });
                dead.push(group.group_id.clone());
            }
            if !records.is_empty() {
                fx.writes.push(Write {
                    records,
                    then: None,
                });
            }
        }
        for id in dead {
            self.groups.remove(&id);
        }
    }

    // ----- Loading ---------------------------------------------------------------------------

    /// Applies one stored record (in log order) while loading the partition.
    pub fn replay(&mut self, record: GroupRecord) {
        match record {
            GroupRecord::Offset {
                group_id,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => {
                    self.groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, v.commit_timestamp_ms))
                        .offsets
                        .insert((topic, partition), v);
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group_id) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            GroupRecord::Group { group_id, value } => match value {
                Some(v) => {
                    let group = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, v.state_timestamp_ms));
                    group.generation_id = v.generation_id;
                    group.protocol_type = v.protocol_type;
                    group.protocol_name = v.protocol_name.clone();
                    group.leader_id = v.leader_id;
                    group.state_timestamp_ms = v.state_timestamp_ms;
                    group.members.clear();
                    group.static_members.clear();
                    let protocol = v.protocol_name.unwrap_or_default();
                    for m in v.members {
                        if let Some(i) = &m.group_instance_id {
                            group.static_members.insert(i.clone(), m.member_id.clone());
                        }
                        group.members.insert(
                            m.member_id.clone(),
                            Member {
                                member_id: m.member_id,
                                group_instance_id: m.group_instance_id,
                                client_id: m.client_id,
                                client_host: m.client_host,
                                session_timeout_ms: m.session_timeout_ms,
                                rebalance_timeout_ms: m.rebalance_timeout_ms,
                                protocols: vec![(protocol.clone(), m.subscription)],
                                assignment: m.assignment,
                                join_ticket: None,
                                sync_ticket: None,
                                heartbeat_deadline_ms: 0,
                                is_new: false,
                            },
                        );
                    }
                }
                None => {
                    let keep_offsets = self
                        .groups
                        .remove(&group_id)
                        .map(|g| g.offsets)
                        .unwrap_or_default();
                    if !keep_offsets.is_empty() {
                        let mut g = Group::new(&group_id, 0);
                        g.offsets = keep_offsets;
                        self.groups.insert(group_id, g);
                    }
                }
            },
        }
    }

    /// Ends loading: groups with members are Stable (their sessions restart now), others Empty.
    pub fn finish_load(&mut self, now_ms: i64) {
        for group in self.groups.values_mut() {
            if group.members.is_empty() {
                group.state = GroupState::Empty;
                group.leader_id = None;
            } else {
                group.state = GroupState::Stable;
                if group
                    .leader_id
                    .as_ref()
                    .is_none_or(|l| !group.members.contains_key(l))
                {
                    group.leader_id = group.members.keys().next().cloned();
                }
                for m in group.members.values_mut() {
                    m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                }
            }
        }
        self.next_cleanup_ms = now_ms + self.config.offsets_retention_check_interval_ms;
    }
}
