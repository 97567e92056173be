//! ApiVersions (key 18), v0-4. The advertised table lives in `protocol::versions`; a request at a
//! version we do not serve is answered by the decoder (KIP-511).

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

pub fn handle(version: i16, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    shoal_protocol::versions::api_versions_response(version).1
}
