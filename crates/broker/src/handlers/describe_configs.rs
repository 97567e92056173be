//! DescribeConfigs (key 32), v1-4: effective topic configs (topic's own, node default, Kafka
//! default) and a few broker configs.

use std::rc::Rc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use crate::config::{topic_config_value, ConfigSource, TOPIC_CONFIG_DEFAULTS};
use crate::handlers::str_bytes;
use crate::shard::Shard;
use shoal_protocol::errors as ec;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn entry(name: &str, value: &str, source: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_config_source(source)
        .with_read_only(source != SOURCE_TOPIC && source != SOURCE_DEFAULT)
}

pub fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let node = &shard.ctx;
    let meta = shard.metadata();
    let results = request
        .resources
        .iter()
        .map(|r| {
            let wanted = |k: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|x| x.as_str() == k))
            };
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                RESOURCE_TOPIC => match meta.topic(r.resource_name.as_str()) {
                    Some(t) => {
                        let configs = TOPIC_CONFIG_DEFAULTS
                            .iter()
                            .filter(|(k, _)| wanted(k))
                            .filter_map(|(k, _)| {
                                let (v, src) =
                                    topic_config_value(k, &node.config.topic_defaults, &t.configs)?;
                                let source = match src {
                                    ConfigSource::Topic => SOURCE_TOPIC,
                                    ConfigSource::Node => SOURCE_STATIC_BROKER,
                                    ConfigSource::Default => SOURCE_DEFAULT,
                                };
                                Some(entry(k, v, source))
                            })
                            .collect();
                        base.with_error_code(ec::NONE).with_configs(configs)
                    }
                    None => base
                        .with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_error_message(Some(str_bytes("unknown topic"))),
                },
                RESOURCE_BROKER => {
                    let c = &node.config;
                    let pairs = [
                        ("broker.id", c.node_id.to_string()),
                        (
                            "auto.create.topics.enable",
                            c.auto_create_topics_enable.to_string(),
                        ),
                        ("num.partitions", c.num_partitions.to_string()),
                        ("socket.request.max.bytes", c.request_bytes_max.to_string()),
                        ("fetch.max.bytes", c.fetch_bytes_max.to_string()),
                        ("log.dirs", c.data_dir.display().to_string()),
                        (
                            "log.retention.check.interval.ms",
                            c.retention_check_interval_ms.to_string(),
                        ),
                    ];
                    let configs = pairs
                        .iter()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, v)| entry(k, v, SOURCE_STATIC_BROKER))
                        .collect();
                    base.with_error_code(ec::NONE).with_configs(configs)
                }
                _ => base
                    .with_error_code(ec::INVALID_REQUEST)
                    .with_error_message(Some(str_bytes("unsupported resource type"))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
