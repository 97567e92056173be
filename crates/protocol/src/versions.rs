//! The advertised ApiVersions table and the ApiVersions response (KIP-511 fallback).
//!
//! Ranges follow Kafka 4.x, widened where real clients need it (see shared/kafka-compat.md):
//! Produce is advertised from v0 because librdkafka < 2.11.1 only enables compression when it
//! sees Produce v0, but v0-2 are refused with UNSUPPORTED_VERSION when they arrive. Maxima are
//! what `kafka-protocol` 0.18 can decode; every client in the table uses min(its max, ours).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use crate::errors;

/// One advertised API: versions `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub api_key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn range(api_key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { api_key, min, max }
}

/// The APIs Shoal advertises, in api-key order.
pub const ADVERTISED: &[ApiRange] = &[
    range(ApiKey::Produce, 0, 13),
    range(ApiKey::Fetch, 4, 18),
    range(ApiKey::ListOffsets, 1, 10),
    range(ApiKey::Metadata, 0, 13),
    range(ApiKey::OffsetCommit, 2, 9),
    range(ApiKey::OffsetFetch, 1, 9),
    range(ApiKey::FindCoordinator, 0, 6),
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 6),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::InitProducerId, 0, 5),
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::OffsetDelete, 0, 0),
    range(ApiKey::DescribeCluster, 0, 2),
];

/// Produce versions that are advertised but refused on arrival (pre record-format-v2).
pub const PRODUCE_REFUSED_MAX: i16 = 2;

/// The advertised range of `api_key` in `table`.
pub fn advertised_in(table: &[ApiRange], api_key: ApiKey) -> Option<ApiRange> {
    table.iter().copied().find(|r| r.api_key == api_key)
}

/// Versions of `api_key` that are decoded and served: advertised, minus refused Produce v0-2,
/// and within what `kafka-protocol` decodes.
pub fn served_in(table: &[ApiRange], api_key: ApiKey) -> Option<(i16, i16)> {
    let advertised = advertised_in(table, api_key)?;
    let decodable = api_key.valid_versions();
    let min = advertised.min.max(decodable.min);
    let max = advertised.max.min(decodable.max);
    (min <= max).then_some((min, max))
}

/// `served_in(ADVERTISED, ..)`.
pub fn served(api_key: ApiKey) -> Option<(i16, i16)> {
    served_in(ADVERTISED, api_key)
}

/// The `api_keys` list of an ApiVersions response.
pub fn api_version_list(table: &[ApiRange]) -> Vec<ApiVersion> {
    table
        .iter()
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.api_key as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect()
}

/// The ApiVersions response for a request at `requested_version`, and the version to encode it
/// with. A version we do not know gets UNSUPPORTED_VERSION plus the full list, encoded as v0
/// (KIP-511), so the client can retry with a version we support. Whatever the version, the
/// response header is v0.
pub fn api_versions_response(requested_version: i16) -> (i16, ApiVersionsResponse) {
    api_versions_response_with(ADVERTISED, requested_version)
}

/// [`api_versions_response`] for a custom table.
pub fn api_versions_response_with(
    table: &[ApiRange],
    requested_version: i16,
) -> (i16, ApiVersionsResponse) {
    let (min, max) = served_in(table, ApiKey::ApiVersions).unwrap_or((0, 0));
    let known = (min..=max).contains(&requested_version);
    let response = ApiVersionsResponse::default()
        .with_error_code(if known {
            errors::NONE
        } else {
            errors::UNSUPPORTED_VERSION
        })
        .with_api_keys(api_version_list(table));
    (if known { requested_version } else { 0 }, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Highest version each client sends (kafka-compat.md): librdkafka 2.15, librdkafka 2.0.2,
    /// kafka-python 3, aiokafka, kafkajs. Each must be inside our range or above our max
    /// (then the client uses our max, which it also supports).
    const CLIENT_MAXIMA: &[(ApiKey, &[i16])] = &[
        (ApiKey::ApiVersions, &[3, 3, 4, 0, 2]),
        (ApiKey::Produce, &[10, 7, 9, 7, 7]),
        (ApiKey::Fetch, &[16, 11, 12, 11, 11]),
        (ApiKey::ListOffsets, &[7, 2, 11, 3, 3]),
        (ApiKey::Metadata, &[13, 4, 13, 5, 6]),
        (ApiKey::OffsetCommit, &[9, 7, 8, 3, 5]),
        (ApiKey::OffsetFetch, &[9, 7, 8, 3, 4]),
        (ApiKey::FindCoordinator, &[2, 2, 6, 1, 2]),
        (ApiKey::JoinGroup, &[5, 5, 7, 5, 5]),
        (ApiKey::Heartbeat, &[3, 3, 4, 1, 3]),
        (ApiKey::LeaveGroup, &[1, 1, 5, 1, 3]),
        (ApiKey::SyncGroup, &[3, 3, 5, 3, 3]),
        (ApiKey::InitProducerId, &[4, 4, 4, 0, 1]),
        (ApiKey::CreateTopics, &[4, 4, 7, 3, 3]),
        (ApiKey::DeleteTopics, &[4, 1, 6, 3, 1]),
        (ApiKey::DescribeConfigs, &[1, 1, 4, 2, 2]),
        (ApiKey::OffsetForLeaderEpoch, &[2, 4]),
    ];

    #[test]
    fn every_client_maximum_is_served() {
        for &(api, maxima) in CLIENT_MAXIMA {
            let (min, max) = served(api).unwrap_or_else(|| panic!("{api:?} not served"));
            for &client_max in maxima {
                let used = client_max.min(max);
                assert!(
                    (min..=max).contains(&used),
                    "{api:?}: client max {client_max} -> v{used} outside served {min}..={max}"
                );
            }
        }
    }

    #[test]
    fn librdkafka_feature_probes_are_advertised() {
        // Produce 0 (compression on old librdkafka), 3 and Fetch 4 (MsgVer2), Produce 7 and
        // Fetch 10 (zstd), FindCoordinator 0, ListOffsets 1, InitProducerId 0, ApiVersions 0.
        let probes = [
            (ApiKey::Produce, 0),
            (ApiKey::Produce, 3),
            (ApiKey::Produce, 7),
            (ApiKey::Fetch, 4),
            (ApiKey::Fetch, 10),
            (ApiKey::FindCoordinator, 0),
            (ApiKey::ListOffsets, 1),
            (ApiKey::InitProducerId, 0),
            (ApiKey::ApiVersions, 0),
        ];
        for (api, v) in probes {
            let r = advertised_in(ADVERTISED, api).unwrap();
            assert!((r.min..=r.max).contains(&v), "{api:?} v{v} not advertised");
        }
        assert_eq!(served(ApiKey::Produce), Some((PRODUCE_REFUSED_MAX + 1, 13)));
    }

    #[test]
    fn table_is_sorted_unique_and_decodable() {
        for pair in ADVERTISED.windows(2) {
            assert!((pair[0].api_key as i16) < (pair[1].api_key as i16));
        }
        for r in ADVERTISED {
            let decodable = r.api_key.valid_versions();
            assert!(
                r.max <= decodable.max,
                "{:?} max above decodable",
                r.api_key
            );
            assert!(r.min <= r.max);
            if r.api_key != ApiKey::Produce {
                assert!(
                    r.min >= decodable.min,
                    "{:?} min below decodable",
                    r.api_key
                );
            }
        }
    }

    #[test]
    fn kip_511_fallback() {
        let (v, ok) = api_versions_response(3);
        assert_eq!((v, ok.error_code), (3, errors::NONE));
        assert_eq!(ok.api_keys.len(), ADVERTISED.len());
        let (v, err) = api_versions_response(5);
        assert_eq!((v, err.error_code), (0, errors::UNSUPPORTED_VERSION));
        assert_eq!(err.api_keys.len(), ADVERTISED.len());
        let (v, err) = api_versions_response(-1);
        assert_eq!((v, err.error_code), (0, errors::UNSUPPORTED_VERSION));
    }
}
