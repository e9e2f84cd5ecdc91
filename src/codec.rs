//! How a cached value is stored: its JSON, gzip-compressed when `cache.compress = "gzip"` and
//! it is at least `cache.compress_min_bytes`, and never more than `cache.max_value_bytes`.
//!
//! A reader needs no flag to tell the forms apart: a gzip stream starts with the magic bytes
//! `1f 8b`, and a JSON value here always starts with `{`.

use std::io::{Read, Write};

use flate2::Compression as Level;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::config::{CacheSettings, Compression};

/// The first two bytes of every gzip stream (RFC 1952).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A value over `cache.max_value_bytes`: not written.
#[derive(Debug, thiserror::Error)]
#[error("value of {size} bytes exceeds cache.max_value_bytes ({limit} bytes); not written")]
pub struct TooLarge {
    pub size: usize,
    pub limit: u64,
}

/// The bytes to store for `json`.
pub fn encode(settings: &CacheSettings, json: Vec<u8>) -> Result<Vec<u8>, TooLarge> {
    let stored = if settings.compress == Compression::Gzip
        && json.len() as u64 >= settings.compress_min_bytes.0
    {
        let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4), Level::default());
        // Writing into a Vec cannot fail.
        encoder
            .write_all(&json)
            .and_then(|()| encoder.finish())
            .expect("gzip into memory")
    } else {
        json
    };
    if stored.len() as u64 > settings.max_value_bytes.0 {
        return Err(TooLarge {
            size: stored.len(),
            limit: settings.max_value_bytes.0,
        });
    }
    Ok(stored)
}

/// The JSON of a stored value, decompressing it when it starts with the gzip magic. Reads at
/// most `limit` bytes of JSON, so a corrupt or hostile value cannot exhaust memory.
pub fn decode(stored: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    if !stored.starts_with(&GZIP_MAGIC) {
        return Ok(stored.to_vec());
    }
    let mut json = Vec::new();
    GzDecoder::new(stored)
        .take(limit + 1)
        .read_to_end(&mut json)?;
    if json.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "decompresses to more than {limit} bytes"
        )));
    }
    Ok(json)
}

/// How much JSON a stored value may decompress to: far more than any chain we write.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;

    fn settings(compress: Compression, min: u64, max: u64) -> CacheSettings {
        CacheSettings {
            compress,
            compress_min_bytes: ByteSize(min),
            max_value_bytes: ByteSize(max),
        }
    }

    fn json(len: usize) -> Vec<u8> {
        let mut v = br#"{"pad":""#.to_vec();
        v.resize(len - 2, b'x');
        v.extend_from_slice(br#""}"#);
        v
    }

    #[test]
    fn values_at_or_above_the_threshold_are_gzip_and_decode_back() {
        let s = settings(Compression::Gzip, 4096, 1 << 20);
        let big = json(4096);
        let stored = encode(&s, big.clone()).unwrap();
        assert!(stored.starts_with(&GZIP_MAGIC));
        assert!(stored.len() < big.len() / 10, "{} bytes", stored.len());
        assert_eq!(decode(&stored, MAX_JSON_BYTES).unwrap(), big);
        let small = json(4095);
        let stored = encode(&s, small.clone()).unwrap();
        assert_eq!(stored, small, "below the threshold: plain");
        assert_eq!(stored[0], b'{');
        assert_eq!(decode(&stored, MAX_JSON_BYTES).unwrap(), small);
    }

    #[test]
    fn compression_off_stores_plain_json_whatever_the_size() {
        let s = settings(Compression::None, 0, 1 << 20);
        let big = json(100_000);
        assert_eq!(encode(&s, big.clone()).unwrap(), big);
    }

    #[test]
    fn the_cap_applies_after_compression() {
        let capped = settings(Compression::None, 4096, 10_000);
        let err = encode(&capped, json(10_001)).unwrap_err();
        assert_eq!((err.size, err.limit), (10_001, 10_000));
        assert!(encode(&capped, json(10_000)).is_ok());
        // The same value compressed fits.
        let gz = settings(Compression::Gzip, 4096, 10_000);
        assert!(encode(&gz, json(10_001)).is_ok());
    }

    #[test]
    fn a_gzip_bomb_is_refused_not_inflated() {
        let s = settings(Compression::Gzip, 0, 1 << 20);
        let stored = encode(&s, json(1 << 20)).unwrap();
        assert!(decode(&stored, 1000).is_err());
        assert!(
            decode(&GZIP_MAGIC, MAX_JSON_BYTES).is_err(),
            "a truncated stream"
        );
    }
}
