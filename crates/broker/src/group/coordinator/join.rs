//! JoinGroup and SyncGroup: membership changes and the rebalance they start.

use super::*;

impl Coordinator {
    // ----- JoinGroup -------------------------------------------------------------------------

    pub fn join(&mut self, now_ms: i64, req: JoinRequest, ticket: Ticket) -> Effects {
        let mut fx = Effects::default();
        let reject = |fx: &mut Effects, code: i16| {
            fx.reply(
                ticket,
                Reply::Join(JoinResponse::error(code, &req.member_id)),
            )
        };
        if req.group_id.is_empty() {
            reject(&mut fx, e::INVALID_GROUP_ID);
            return fx;
        }
        if req.session_timeout_ms < self.config.session_timeout_ms_min
            || req.session_timeout_ms > self.config.session_timeout_ms_max
        {
            reject(&mut fx, e::INVALID_SESSION_TIMEOUT);
            return fx;
        }
        let unknown_member = req.member_id.is_empty();
        if !self.groups.contains_key(&req.group_id) {
            if !unknown_member {
                reject(&mut fx, e::UNKNOWN_MEMBER_ID);
                return fx;
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let group = self.groups.get(&req.group_id).expect("present");
        let error = if group.state == GroupState::Dead {
            Some(e::COORDINATOR_NOT_AVAILABLE)
        } else if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            Some(e::INCONSISTENT_GROUP_PROTOCOL)
        } else if !group.members.contains_key(&req.member_id)
            && !group.pending_members.contains_key(&req.member_id)
            && !req
                .group_instance_id
                .as_ref()
                .is_some_and(|i| group.static_members.contains_key(i))
            && group.size() >= self.config.group_members_max
        {
            Some(e::GROUP_MAX_SIZE_REACHED)
        } else {
            None
        };
        if let Some(code) = error {
            reject(&mut fx, code);
            self.remove_if_unused(&req.group_id);
            return fx;
        }
        if unknown_member {
            self.join_new_member(now_ms, req, ticket, &mut fx);
        } else {
            self.join_known_member(now_ms, req, ticket, &mut fx);
        }
        fx
    }

    /// A group created by a request that then failed holds nothing: forget it.
    pub(super) fn remove_if_unused(&mut self, group_id: &str) {
        if let Some(g) = self.groups.get(group_id) {
            if g.state == GroupState::Empty
                && g.generation_id == 0
                && g.members.is_empty()
                && g.pending_members.is_empty()
                && g.offsets.is_empty()
                && g.protocol_type.is_none()
            {
                self.groups.remove(group_id);
            }
        }
    }

    pub(super) fn join_new_member(
        &mut self,
        now_ms: i64,
        req: JoinRequest,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let member_id = self.new_member_id(&req.client_id, req.group_instance_id.as_deref());
        let group = self.groups.get_mut(&req.group_id).expect("present");
        match req.group_instance_id.as_deref() {
            Some(instance) if group.static_members.contains_key(instance) => {
                self.replace_static_member(now_ms, req, member_id, ticket, fx);
            }
            Some(_) => self.add_member_and_rebalance(now_ms, req, member_id, ticket, fx),
            None if req.require_known_member_id => {
                let deadline = now_ms + req.session_timeout_ms as i64;
                group.pending_members.insert(member_id.clone(), deadline);
                fx.reply(
                    ticket,
                    Reply::Join(JoinResponse::error(e::MEMBER_ID_REQUIRED, &member_id)),
                );
            }
            None => self.add_member_and_rebalance(now_ms, req, member_id, ticket, fx),
        }
    }

    pub(super) fn join_known_member(
        &mut self,
        now_ms: i64,
        req: JoinRequest,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let group = self.groups.get_mut(&req.group_id).expect("present");
        let member_id = req.member_id.clone();
        if group.pending_members.remove(&member_id).is_some() {
            self.add_member_and_rebalance(now_ms, req, member_id, ticket, fx);
            return;
        }
        let reject = |fx: &mut Effects, code: i16| {
            fx.reply(ticket, Reply::Join(JoinResponse::error(code, &member_id)))
        };
        if group.is_static_fenced(req.group_instance_id.as_deref(), &member_id) {
            return reject(fx, e::FENCED_INSTANCE_ID);
        }
        let Some(member) = group.members.get(&member_id) else {
            return reject(fx, e::UNKNOWN_MEMBER_ID);
        };
        if member.group_instance_id.is_some() && member.group_instance_id != req.group_instance_id {
            return reject(fx, e::FENCED_INSTANCE_ID);
        }
        let same_protocols = member.protocols == req.protocols;
        match group.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now_ms, req, ticket, fx)
            }
            GroupState::CompletingRebalance if same_protocols => {
                // The member lost the join response: send it again.
                let reply = group.join_reply(&member_id, group.is_leader(&member_id));
                let m = group.members.get_mut(&member_id).expect("member");
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                fx.reply(ticket, Reply::Join(reply));
            }
            GroupState::Stable if same_protocols && !group.is_leader(&member_id) => {
                // A follower rejoining with unchanged metadata: nothing to rebalance.
                let reply = group.join_reply(&member_id, false);
                let m = group.members.get_mut(&member_id).expect("member");
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                fx.reply(ticket, Reply::Join(reply));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(now_ms, req, ticket, fx)
            }
            GroupState::Empty | GroupState::Dead => reject(fx, e::UNKNOWN_MEMBER_ID),
        }
    }

    pub(super) fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        req: JoinRequest,
        member_id: String,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let new_member_join_timeout_ms = self.config.new_member_join_timeout_ms;
        let group = self.groups.get_mut(&req.group_id).expect("present");
        if group.state == GroupState::PreparingRebalance && group.generation_id == 0 {
            group.new_member_added = true;
        }
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), member_id.clone());
        }
        if group.leader_id.is_none() {
            group.leader_id = Some(member_id.clone());
        }
        group.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_ticket: Some(ticket),
                sync_ticket: None,
                heartbeat_deadline_ms: now_ms + new_member_join_timeout_ms,
                is_new: true,
            },
        );
        let group_id = req.group_id;
        self.maybe_prepare_rebalance(now_ms, &group_id, fx);
    }

    pub(super) fn update_member_and_rebalance(
        &mut self,
        now_ms: i64,
        req: JoinRequest,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let group = self.groups.get_mut(&req.group_id).expect("present");
        let m = group.members.get_mut(&req.member_id).expect("member");
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        if let Some(old) = m.join_ticket.replace(ticket) {
            // A retried join replaces the earlier one, which the client no longer waits for.
            fx.reply(
                old,
                Reply::Join(JoinResponse::error(
                    e::REBALANCE_IN_PROGRESS,
                    &req.member_id,
                )),
            );
        }
        self.maybe_prepare_rebalance(now_ms, &req.group_id, fx);
    }

    /// A static member rejoining with an unknown member id (a restarted process): it takes over
    /// the old member's place; the old member id is fenced.
    pub(super) fn replace_static_member(
        &mut self,
        now_ms: i64,
        req: JoinRequest,
        new_id: String,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let group = self.groups.get_mut(&req.group_id).expect("present");
        let instance = req.group_instance_id.clone().expect("static");
        let old_id = group.static_members[&instance].clone();
        let old_leader = group.leader_id.clone().unwrap_or_default();
        let was_leader = group.is_leader(&old_id);
        let Some(mut member) = group.members.shift_remove(&old_id) else {
            fx.reply(
                ticket,
                Reply::Join(JoinResponse::error(e::UNKNOWN_MEMBER_ID, "")),
            );
            return;
        };
        if let Some(t) = member.join_ticket.take() {
            fx.reply(
                t,
                Reply::Join(JoinResponse::error(e::FENCED_INSTANCE_ID, &old_id)),
            );
        }
        if let Some(t) = member.sync_ticket.take() {
            fx.reply(t, Reply::Sync(SyncResponse::error(e::FENCED_INSTANCE_ID)));
        }
        let old_protocols = std::mem::replace(&mut member.protocols, req.protocols);
        member.member_id = new_id.clone();
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.heartbeat_deadline_ms = now_ms + req.session_timeout_ms as i64;
        group.members.insert(new_id.clone(), member);
        group.static_members.insert(instance, new_id.clone());
        if was_leader {
            group.leader_id = Some(new_id.clone());
        }
        if group.pending_sync.remove(&old_id) {
            group.pending_sync.insert(new_id.clone());
        }
        match group.state {
            GroupState::Stable => {
                let unchanged = group.select_protocol() == group.protocol_name
                    && old_protocols == group.members[&new_id].protocols;
                if unchanged {
                    // Keep the assignment; the returned leader is the old leader id so the
                    // rejoined member does not compute a new assignment (v9: skip_assignment).
                    let mut reply = group.join_reply(&new_id, was_leader);
                    reply.leader = old_leader;
                    reply.skip_assignment = was_leader;
                    fx.writes.push(Write {
                        records: vec![group.metadata_record()],
                        then: Some(AfterWrite::Reply {
                            ticket,
                            reply: Reply::Join(reply),
                        }),
                    });
                } else {
                    group.members.get_mut(&new_id).expect("member").join_ticket = Some(ticket);
                    let group_id = req.group_id;
                    self.prepare_rebalance(now_ms, &group_id, fx);
                }
            }
            GroupState::CompletingRebalance | GroupState::PreparingRebalance => {
                group.members.get_mut(&new_id).expect("member").join_ticket = Some(ticket);
                let group_id = req.group_id;
                self.maybe_prepare_rebalance(now_ms, &group_id, fx);
            }
            GroupState::Empty | GroupState::Dead => {
                fx.reply(
                    ticket,
                    Reply::Join(JoinResponse::error(e::COORDINATOR_NOT_AVAILABLE, &new_id)),
                );
            }
        }
    }

    /// Starts a rebalance unless one is in progress, in which case the join may now complete.
    pub(super) fn maybe_prepare_rebalance(
        &mut self,
        now_ms: i64,
        group_id: &str,
        fx: &mut Effects,
    ) {
        let state = self.groups[group_id].state;
        match state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, group_id, fx)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now_ms, group_id, fx),
            GroupState::Dead => {}
        }
    }

    pub(super) fn prepare_rebalance(&mut self, now_ms: i64, group_id: &str, fx: &mut Effects) {
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(group_id).expect("present");
        if group.state == GroupState::CompletingRebalance {
            // Syncs waiting for the leader's assignment are told to rejoin.
            for m in group.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.sync_ticket.take() {
                    fx.reply(
                        t,
                        Reply::Sync(SyncResponse::error(e::REBALANCE_IN_PROGRESS)),
                    );
                }
            }
        }
        group.staged_assignment = None;
        group.pending_sync.clear();
        let rebalance_timeout_ms = group.rebalance_timeout_ms();
        if group.state == GroupState::Empty {
            group.join_deadline_ms = now_ms + delay_ms.min(rebalance_timeout_ms);
            group.initial_join_until_ms = Some(now_ms + rebalance_timeout_ms);
            group.new_member_added = false;
        } else {
            group.join_deadline_ms = now_ms + rebalance_timeout_ms;
            group.initial_join_until_ms = None;
        }
        group.transition(GroupState::PreparingRebalance, now_ms);
        self.try_complete_join(now_ms, group_id, fx);
    }

    /// Completes the join phase when every member has rejoined (or, for the first rebalance of
    /// an empty group, when the initial delay is over), or when the rebalance timeout expires.
    pub(super) fn try_complete_join(&mut self, now_ms: i64, group_id: &str, fx: &mut Effects) {
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(group_id).expect("present");
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(until) = group.initial_join_until_ms {
            if now_ms < group.join_deadline_ms {
                return;
            }
            if group.new_member_added && now_ms < until {
                group.new_member_added = false;
                group.join_deadline_ms = now_ms + delay_ms.min(until - now_ms);
                return;
            }
        } else if !group.all_members_joined() && now_ms < group.join_deadline_ms {
            return;
        }
        self.complete_join(now_ms, group_id, fx);
    }

    pub(super) fn complete_join(&mut self, now_ms: i64, group_id: &str, fx: &mut Effects) {
        let group = self.groups.get_mut(group_id).expect("present");
        // Members that did not rejoin in time are dropped.
        let gone: Vec<String> = group
            .members
            .values()
            .filter(|m| m.join_ticket.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            let m = group.members.shift_remove(id).expect("member");
            if let Some(instance) = &m.group_instance_id {
                group.static_members.remove(instance);
            }
            if let Some(t) = m.sync_ticket {
                fx.reply(t, Reply::Sync(SyncResponse::error(e::UNKNOWN_MEMBER_ID)));
            }
        }
        if group
            .leader_id
            .as_ref()
            .is_none_or(|l| !group.members.contains_key(l))
        {
            group.leader_id = group.members.keys().next().cloned();
        }
        group.initial_join_until_ms = None;
        group.new_member_added = false;
        group.generation_id += 1;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.transition(GroupState::Empty, now_ms);
            fx.writes.push(Write {
                records: vec![group.metadata_record()],
                then: None,
            });
            return;
        }
        let Some(protocol) = group.select_protocol() else {
            // Members updated their protocols into incompatibility: nobody can be served.
            let ids: Vec<String> = group.members.keys().cloned().collect();
            for id in ids {
                let m = group.members.shift_remove(&id).expect("member");
                if let Some(t) = m.join_ticket {
                    fx.reply(
                        t,
                        Reply::Join(JoinResponse::error(e::INCONSISTENT_GROUP_PROTOCOL, &id)),
                    );
                }
            }
            group.static_members.clear();
            group.leader_id = None;
            group.protocol_name = None;
            group.transition(GroupState::Empty, now_ms);
            fx.writes.push(Write {
                records: vec![group.metadata_record()],
                then: None,
            });
            return;
        };
        group.protocol_name = Some(protocol);
        group.transition(GroupState::CompletingRebalance, now_ms);
        group.pending_sync = group.members.keys().cloned().collect();
        group.sync_deadline_ms = now_ms + group.rebalance_timeout_ms();
        let leader = group.leader_id.clone().expect("leader");
        let leader_reply = group.join_reply(&leader, true);
        for m in group.members.values_mut() {
            m.is_new = false;
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
            let t = m
                .join_ticket
                .take()
                .expect("every remaining member rejoined");
            let mut reply = leader_reply.clone();
            reply.member_id = m.member_id.clone();
            if m.member_id != leader {
                reply.members = Vec::new();
            }
            fx.reply(t, Reply::Join(reply));
        }
    }

    // ----- SyncGroup -------------------------------------------------------------------------

    pub fn sync(&mut self, now_ms: i64, req: SyncRequest, ticket: Ticket) -> Effects {
        let mut fx = Effects::default();
        let reject =
            |fx: &mut Effects, code: i16| fx.reply(ticket, Reply::Sync(SyncResponse::error(code)));
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            reject(&mut fx, e::UNKNOWN_MEMBER_ID);
            return fx;
        };
        if group.state == GroupState::Dead {
            reject(&mut fx, e::COORDINATOR_NOT_AVAILABLE);
        } else if group.is_static_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            reject(&mut fx, e::FENCED_INSTANCE_ID);
        } else if !group.members.contains_key(&req.member_id) {
            reject(&mut fx, e::UNKNOWN_MEMBER_ID);
        } else if req.generation_id != group.generation_id {
            reject(&mut fx, e::ILLEGAL_GENERATION);
        } else if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != group.protocol_name.as_ref())
        {
            reject(&mut fx, e::INCONSISTENT_GROUP_PROTOCOL);
        } else {
            match group.state {
                GroupState::Empty | GroupState::Dead => reject(&mut fx, e::UNKNOWN_MEMBER_ID),
                GroupState::PreparingRebalance => reject(&mut fx, e::REBALANCE_IN_PROGRESS),
                GroupState::CompletingRebalance => {
                    group.pending_sync.remove(&req.member_id);
                    let is_leader = group.is_leader(&req.member_id);
                    let m = group.members.get_mut(&req.member_id).expect("member");
                    m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                    if let Some(old) = m.sync_ticket.replace(ticket) {
                        fx.reply(
                            old,
                            Reply::Sync(SyncResponse::error(e::REBALANCE_IN_PROGRESS)),
                        );
                    }
                    if is_leader && group.staged_assignment.is_none() {
                        let mut staged: HashMap<String, Bytes> = HashMap::new();
                        for (id, a) in req.assignments {
                            if group.members.contains_key(&id) {
                                staged.insert(id, a);
                            }
                        }
                        group.staged_assignment = Some(staged);
                        fx.writes.push(Write {
                            records: vec![group.metadata_record()],
                            then: Some(AfterWrite::SyncStored {
                                group_id: group.group_id.clone(),
                                generation_id: group.generation_id,
                            }),
                        });
                    }
                }
                GroupState::Stable => {
                    group.pending_sync.remove(&req.member_id);
                    let m = group.members.get_mut(&req.member_id).expect("member");
                    m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                    let reply = SyncResponse {
                        error: e::NONE,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    };
                    fx.reply(ticket, Reply::Sync(reply));
                }
            }
        }
        fx
    }
}
