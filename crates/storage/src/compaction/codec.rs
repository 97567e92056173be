//! Record payload codecs for the cleaner: Kafka's framings (gzip, xerial or raw snappy, the
//! LZ4 frame format, zstd), through the same well-kept crates `kafka-protocol` uses.
//! Decompression is bounded by `DECOMPRESSED_BYTES_MAX` (a stored batch is never a bomb we
//! trust blindly).

use std::io::{Read, Write};

use super::super::batch::{BatchError, Compression};

/// Largest decompressed records section the cleaner accepts for one batch.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// The xerial (Java client) snappy stream header; raw snappy has none.
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
const LZ4_LEVEL: u32 = 4;
const ZSTD_LEVEL: i32 = 3;

/// How a payload was framed, so the cleaner writes it back the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Plain,
    /// Snappy in the xerial block format.
    Xerial,
}

fn bad(reason: &'static str) -> BatchError {
    BatchError::BadRecords { reason }
}

fn read_bounded(mut reader: impl Read) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    reader
        .by_ref()
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| bad("payload does not decompress"))?;
    if out.len() > DECOMPRESSED_BYTES_MAX {
        return Err(bad("decompressed payload over DECOMPRESSED_BYTES_MAX"));
    }
    Ok(out)
}

fn snappy_raw(block: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    let len = snap::raw::decompress_len(block).map_err(|_| bad("bad snappy block"))?;
    if out.len() + len > DECOMPRESSED_BYTES_MAX {
        return Err(bad("decompressed payload over DECOMPRESSED_BYTES_MAX"));
    }
    let at = out.len();
    out.resize(at + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[at..])
        .map_err(|_| bad("bad snappy block"))?;
    Ok(())
}

fn snappy_decompress(input: &[u8]) -> Result<(Vec<u8>, Framing), BatchError> {
    let mut out = Vec::new();
    let Some(mut rest) = input.strip_prefix(&XERIAL_MAGIC[..]) else {
        snappy_raw(input, &mut out)?;
        return Ok((out, Framing::Plain));
    };
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(bad("truncated xerial block length"));
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let block = rest.get(4..4 + len).ok_or(bad("truncated xerial block"))?;
        snappy_raw(block, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok((out, Framing::Xerial))
}

/// The records section of a batch compressed with `codec`, decompressed.
pub fn decompress(codec: Compression, input: &[u8]) -> Result<(Vec<u8>, Framing), BatchError> {
    match codec {
        Compression::None => Ok((input.to_vec(), Framing::Plain)),
        Compression::Gzip => Ok((
            read_bounded(flate2::read::GzDecoder::new(input))?,
            Framing::Plain,
        )),
        Compression::Snappy => snappy_decompress(input),
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(input).map_err(|_| bad("bad lz4 frame"))?;
            Ok((read_bounded(decoder)?, Framing::Plain))
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(|_| bad("bad zstd"))?;
            Ok((read_bounded(decoder)?, Framing::Plain))
        }
    }
}

fn snappy_compress(input: &[u8], framing: Framing) -> Vec<u8> {
    let mut encoder = snap::raw::Encoder::new();
    if framing == Framing::Plain {
        return encoder
            .compress_vec(input)
            .expect("snappy accepts any input");
    }
    let mut out = XERIAL_MAGIC.to_vec();
    for block in input.chunks(XERIAL_BLOCK_BYTES) {
        let compressed = encoder
            .compress_vec(block)
            .expect("snappy accepts any input");
        out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    out
}

/// `input` compressed with `codec` in `framing` (framing matters for snappy only).
pub fn compress(codec: Compression, input: &[u8], framing: Framing) -> Vec<u8> {
    match codec {
        Compression::None => input.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(input).expect("writes to a Vec do not fail");
            e.finish().expect("writes to a Vec do not fail")
        }
        Compression::Snappy => snappy_compress(input, framing),
        Compression::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .level(LZ4_LEVEL)
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .expect("lz4 encoder");
            e.write_all(input).expect("writes to a Vec do not fail");
            let (out, result) = e.finish();
            result.expect("writes to a Vec do not fail");
            out
        }
        Compression::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).expect("zstd compresses"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for framing in [Framing::Plain, Framing::Xerial] {
                let packed = compress(codec, &input, framing);
                let (unpacked, seen) = decompress(codec, &packed).unwrap();
                assert_eq!(unpacked, input, "{codec:?} {framing:?}");
                if codec == Compression::Snappy {
                    assert_eq!(seen, framing);
                }
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(
                decompress(codec, b"definitely not compressed").is_err(),
                "{codec:?}"
            );
        }
    }
}
