//! ApiVersions (key 18), v0-4. The advertised table: Kafka 4.x ranges, widened where real clients
//! need it (Produce from v0 so librdkafka < 2.11 enables compression; v0-2 are refused on arrival),
//! capped where Shoal does not yet serve the newest version (topic-id Produce v13).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::error_codes as ec;

/// (api, advertised min, advertised max). Versions below the decodable floor are refused.
pub const ADVERTISED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 1),
];

/// The range a request is decoded and served in (Produce v0-2 are advertised but refused).
pub fn supported(api: ApiKey) -> Option<(i16, i16)> {
    let &(_, min, max) = ADVERTISED.iter().find(|(k, _, _)| *k == api)?;
    let floor = api.valid_versions().min;
    Some((min.max(floor), max))
}

fn api_list() -> Vec<ApiVersion> {
    ADVERTISED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub fn handle(_version: i16, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ec::NONE)
        .with_api_keys(api_list())
}

/// KIP-511: a request at an unknown version gets error 35 and the list, encoded as v0.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ec::UNSUPPORTED_VERSION)
        .with_api_keys(api_list())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_max_is_inside_the_advertised_ranges() {
        // Highest versions sent by librdkafka 2.16, librdkafka 2.0.2, kafka-python 3, aiokafka.
        let needs: &[(ApiKey, &[i16])] = &[
            (ApiKey::Produce, &[10, 7, 9, 7, 3, 0]),
            (ApiKey::Fetch, &[16, 11, 12, 4, 10]),
            (ApiKey::ListOffsets, &[7, 2, 3, 1]),
            (ApiKey::Metadata, &[13, 4, 5]),
            (ApiKey::ApiVersions, &[3, 4, 0]),
            (ApiKey::InitProducerId, &[4, 0]),
            (ApiKey::CreateTopics, &[4, 7, 3]),
            (ApiKey::DeleteTopics, &[4, 1, 6, 3]),
            (ApiKey::DescribeConfigs, &[1, 4, 2]),
            (ApiKey::OffsetForLeaderEpoch, &[2, 4]),
        ];
        for (api, versions) in needs {
            let &(_, min, max) = ADVERTISED.iter().find(|(k, _, _)| k == api).unwrap();
            for v in *versions {
                assert!((min..=max).contains(v), "{api:?} v{v} not advertised");
            }
        }
        assert_eq!(supported(ApiKey::Produce), Some((3, 12)), "Produce v0-2 refused");
    }
}
