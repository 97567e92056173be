//! Kafka wire protocol: framing, headers, request/response codecs.
