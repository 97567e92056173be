//! InitProducerId (key 22), v0-5: a fresh producer id (epoch 0) for idempotent producers, from
//! this broker's committed producer id block (a new block comes from the controller). Transactional ids are refused: transactions are not implemented.

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::shard::Shard;
use shoal_protocol::errors as ec;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let error = |code| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return error(ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    match shard.ctx.metadata.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_error_code(ec::NONE)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            log::warn!("allocating a producer id: {e}");
            // Retriable for clients: the controller may be electing or unreachable.
            error(ec::COORDINATOR_NOT_AVAILABLE)
        }
    }
}
