//! Write completions, Heartbeat and LeaveGroup.

use super::*;

impl Coordinator {
    // ----- Write completions -----------------------------------------------------------------

    /// Called by the driver once a `Write` is durable (`error == NONE`) or failed.
    pub fn write_done(&mut self, now_ms: i64, after: AfterWrite, error: i16) -> Effects {
        let mut fx = Effects::default();
        let error = map_write_error(error);
        match after {
            AfterWrite::SyncStored {
                group_id,
                generation_id,
            } => {
                let Some(group) = self.groups.get_mut(&group_id) else {
                    return fx;
                };
                if group.state != GroupState::CompletingRebalance
                    || group.generation_id != generation_id
                {
                    return fx; // A rebalance started meanwhile and answered the parked syncs.
                }
                let Some(staged) = group.staged_assignment.take() else {
                    return fx;
                };
                if error != e::NONE {
                    for m in group.members.values_mut() {
                        m.assignment = Bytes::new();
                        if let Some(t) = m.sync_ticket.take() {
                            fx.reply(t, Reply::Sync(SyncResponse::error(error)));
                        }
                    }
                    self.prepare_rebalance(now_ms, &group_id, &mut fx);
                    return fx;
                }
                let (ptype, pname) = (group.protocol_type.clone(), group.protocol_name.clone());
                for m in group.members.values_mut() {
                    m.assignment = staged.get(&m.member_id).cloned().unwrap_or_default();
                    if let Some(t) = m.sync_ticket.take() {
                        fx.reply(
                            t,
                            Reply::Sync(SyncResponse {
                                error: e::NONE,
                                protocol_type: ptype.clone(),
                                protocol_name: pname.clone(),
                                assignment: m.assignment.clone(),
                            }),
                        );
                    }
                }
                group.transition(GroupState::Stable, now_ms);
            }
            AfterWrite::OffsetsStored {
                group_id,
                ticket,
                offsets,
                errors,
            } => {
                if error == e::NONE {
                    let group = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, now_ms));
                    for (topic, partition, value) in offsets {
                        group.offsets.insert((topic, partition), value);
                    }
                }
                let codes = errors.into_iter().map(|c| c.unwrap_or(error)).collect();
                fx.reply(ticket, Reply::Commit(codes));
            }
            AfterWrite::Reply { ticket, reply } => {
                let reply = if error == e::NONE {
                    reply
                } else {
                    match reply {
                        Reply::Join(j) => Reply::Join(JoinResponse::error(error, &j.member_id)),
                        Reply::Sync(_) => Reply::Sync(SyncResponse::error(error)),
                        Reply::Commit(c) => Reply::Commit(vec![error; c.len()]),
                        Reply::Delete(_) => Reply::Delete(error),
                        Reply::OffsetDelete(_, p) => {
                            Reply::OffsetDelete(error, vec![error; p.len()])
                        }
                    }
                };
                fx.reply(ticket, reply);
            }
        }
        fx
    }

    // ----- Heartbeat, LeaveGroup -------------------------------------------------------------

    pub fn heartbeat(&mut self, now_ms: i64, req: HeartbeatRequest) -> i16 {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return e::UNKNOWN_MEMBER_ID;
        };
        if group.state == GroupState::Dead {
            return e::COORDINATOR_NOT_AVAILABLE;
        }
        if group.is_static_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return e::FENCED_INSTANCE_ID;
        }
        let generation_id = group.generation_id;
        let state = group.state;
        let Some(m) = group.members.get_mut(&req.member_id) else {
            return e::UNKNOWN_MEMBER_ID;
        };
        if req.generation_id != generation_id {
            return e::ILLEGAL_GENERATION;
        }
        match state {
            GroupState::Empty | GroupState::Dead => e::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                e::REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                e::NONE
            }
        }
    }

    /// LeaveGroup for `(member_id, group_instance_id)` pairs (v3+ batches; v0-2 send one).
    /// Returns the top-level error and one error per member.
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> (i16, Vec<i16>, Effects) {
        let mut fx = Effects::default();
        let Some(group) = self.groups.get(group_id) else {
            return (
                e::UNKNOWN_MEMBER_ID,
                vec![e::UNKNOWN_MEMBER_ID; members.len()],
                fx,
            );
        };
        if group.state == GroupState::Dead {
            return (
                e::COORDINATOR_NOT_AVAILABLE,
                vec![e::COORDINATOR_NOT_AVAILABLE; members.len()],
                fx,
            );
        }
        let mut errors = Vec::with_capacity(members.len());
        for (member_id, instance) in members {
            let group = self.groups.get_mut(group_id).expect("present");
            let code = if let Some(instance) = instance {
                match group.static_members.get(instance).cloned() {
                    None => e::UNKNOWN_MEMBER_ID,
                    Some(owner) if !member_id.is_empty() && *member_id != owner => {
                        e::FENCED_INSTANCE_ID
                    }
                    Some(owner) => {
                        self.remove_member_and_update_group(now_ms, group_id, &owner, &mut fx);
                        e::NONE
                    }
                }
            } else if group.pending_members.remove(member_id).is_some() {
                self.try_complete_join(now_ms, group_id, &mut fx);
                e::NONE
            } else if !group.members.contains_key(member_id) {
                e::UNKNOWN_MEMBER_ID
            } else {
                self.remove_member_and_update_group(now_ms, group_id, member_id, &mut fx);
                e::NONE
            };
            errors.push(code);
        }
        (e::NONE, errors, fx)
    }

    pub(super) fn remove_member_and_update_group(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        fx: &mut Effects,
    ) {
        let group = self.groups.get_mut(group_id).expect("present");
        let Some(m) = group.members.shift_remove(member_id) else {
            return;
        };
        if let Some(instance) = &m.group_instance_id {
            if group.static_members.get(instance).map(String::as_str) == Some(member_id) {
                group.static_members.remove(instance);
            }
        }
        if let Some(t) = m.join_ticket {
            fx.reply(
                t,
                Reply::Join(JoinResponse::error(e::UNKNOWN_MEMBER_ID, member_id)),
            );
        }
        if let Some(t) = m.sync_ticket {
            fx.reply(t, Reply::Sync(SyncResponse::error(e::UNKNOWN_MEMBER_ID)));
        }
        group.pending_sync.remove(member_id);
        if group.is_leader(member_id) {
            group.leader_id = group.members.keys().next().cloned();
        }
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, group_id, fx)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now_ms, group_id, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
}
