//! The broker side of the node: register with the controller, then heartbeat every interval.

use shoal_metadata::{BrokerId, ControllerError, ControllerReply, ControllerRequest, Endpoints};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unregistered,
    Registered { broker_epoch: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    No,
    Requested,
    /// The controller moved every leadership away: stop heartbeating, the process may exit.
    Done,
}

pub(crate) struct BrokerDuty {
    shutdown: Shutdown,
    broker_id: BrokerId,
    interval_ms: u64,
    state: State,
    in_flight: bool,
    next_ms: u64,
    fenced: bool,
}

impl BrokerDuty {
    pub(crate) fn new(broker_id: BrokerId, interval_ms: u64) -> BrokerDuty {
        assert!(interval_ms > 0);
        BrokerDuty {
            shutdown: Shutdown::No,
            broker_id,
            interval_ms,
            state: State::Unregistered,
            in_flight: false,
            next_ms: 0,
            fenced: true,
        }
    }

    pub(crate) fn broker_epoch(&self) -> Option<i64> {
        match self.state {
            State::Registered { broker_epoch } => Some(broker_epoch),
            State::Unregistered => None,
        }
    }

    pub(crate) fn request_shutdown(&mut self) {
        if self.shutdown == Shutdown::No {
            self.shutdown = Shutdown::Requested;
            self.next_ms = 0;
        }
    }

    pub(crate) fn fenced(&self) -> bool {
        self.fenced
    }

    pub(crate) fn shutdown_done(&self) -> bool {
        self.shutdown == Shutdown::Done
    }

    /// The request due now, with its timeout: one in flight at a time, each timing out after one
    /// interval so a lost heartbeat delays the next by at most that.
    pub(crate) fn next_request(
        &mut self,
        now_ms: u64,
        incarnation_id: Uuid,
        endpoints: &Endpoints,
        rack: &Option<String>,
    ) -> Option<(ControllerRequest, u64)> {
        if self.in_flight || now_ms < self.next_ms || self.shutdown == Shutdown::Done {
            return None;
        }
        self.in_flight = true;
        self.next_ms = now_ms + self.interval_ms;
        let request = match self.state {
            State::Unregistered => ControllerRequest::RegisterBroker {
                broker_id: self.broker_id,
                incarnation_id,
                endpoints: endpoints.clone(),
                rack: rack.clone(),
            },
            State::Registered { broker_epoch } if self.shutdown == Shutdown::Requested => {
                ControllerRequest::ControlledShutdown {
                    broker_id: self.broker_id,
                    broker_epoch,
                }
            }
            State::Registered { broker_epoch } => ControllerRequest::BrokerHeartbeat {
                broker_id: self.broker_id,
                broker_epoch,
            },
        };
        Some((request, self.interval_ms))
    }

    pub(crate) fn on_reply(
        &mut self,
        reply: Result<ControllerReply, ControllerError>,
        now_ms: u64,
    ) {
        self.in_flight = false;
        match reply {
            Ok(ControllerReply::RegisterBroker { broker_epoch }) => {
                self.state = State::Registered { broker_epoch };
                self.next_ms = now_ms; // Heartbeat at once: that unfences.
            }
            Ok(ControllerReply::Heartbeat { fenced, .. }) => self.fenced = fenced,
            Ok(ControllerReply::ControlledShutdown {
                leaderships_remaining: 0,
            }) => self.shutdown = Shutdown::Done,
            Err(ControllerError::StaleBrokerEpoch { .. } | ControllerError::UnknownBroker(_)) => {
                self.state = State::Unregistered;
                self.fenced = true;
            }
            // NotController, Timeout: retry soon with whoever leads by then.
            Err(_) => self.next_ms = self.next_ms.min(now_ms + self.interval_ms / 4),
            Ok(_) => {}
        }
    }
}
