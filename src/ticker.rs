//! The ticker symbol domain type: the only way a watchlist member reaches a URL or a Redis key.

use std::fmt;

/// Longest symbol accepted; real ones (`EURUSD=X`, `BRK-B`, option roots) are far shorter.
pub const MAX_LEN: usize = 20;

/// A validated, upper-case ticker symbol: `A-Z`, `0-9` and `. - ^ =`, 1 to 20 characters
/// (`AAPL`, `BRK-B`, `^GSPC`, `EURUSD=X`, `ES=F`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticker(String);

/// Why a raw watchlist member is not a ticker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTicker {
    #[error("empty symbol")]
    Empty,
    #[error("symbol longer than {MAX_LEN} characters")]
    TooLong,
    #[error("symbol contains a character outside A-Z 0-9 . - ^ =")]
    BadCharacter,
}

impl Ticker {
    /// Normalises (trims surrounding whitespace, upper-cases) and validates raw bytes, such as a
    /// member of `finance:watchlist`.
    pub fn parse(raw: &[u8]) -> Result<Ticker, InvalidTicker> {
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Err(InvalidTicker::Empty);
        }
        if trimmed.len() > MAX_LEN {
            return Err(InvalidTicker::TooLong);
        }
        if !trimmed
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'^' | b'='))
        {
            return Err(InvalidTicker::BadCharacter);
        }
        // Only ASCII passed the check above, so this is valid UTF-8.
        Ok(Ticker(
            String::from_utf8_lossy(trimmed).to_ascii_uppercase(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A hash of the symbol that is the same in every build and on every machine (FNV-1a), for
    /// splitting work into shards and for mapping tickers onto recordings.
    pub fn stable_hash(&self) -> u64 {
        self.0.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
}

impl std::str::FromStr for Ticker {
    type Err = InvalidTicker;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ticker::parse(s.as_bytes())
    }
}

impl fmt::Display for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticker({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_symbols_are_accepted_and_upper_cased() {
        for (raw, want) in [
            ("AAPL", "AAPL"),
            ("brk-b", "BRK-B"),
            ("^GSPC", "^GSPC"),
            ("EURUSD=X", "EURUSD=X"),
            (" es=f\n", "ES=F"),
            ("BRK.A", "BRK.A"),
        ] {
            assert_eq!(
                Ticker::parse(raw.as_bytes()).unwrap().as_str(),
                want,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn the_stable_hash_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(
            Ticker::parse(b"A").unwrap().stable_hash(),
            0xaf63_fc4c_8602_22ec
        );
        assert_ne!(
            Ticker::parse(b"AAPL").unwrap().stable_hash(),
            Ticker::parse(b"MSFT").unwrap().stable_hash()
        );
    }

    #[test]
    fn garbage_is_rejected_with_its_reason() {
        assert_eq!(Ticker::parse(b""), Err(InvalidTicker::Empty));
        assert_eq!(Ticker::parse(b"   "), Err(InvalidTicker::Empty));
        assert_eq!(Ticker::parse(&[b'A'; 21]), Err(InvalidTicker::TooLong));
        for bad in [
            &b"../etc"[..],
            b"A B",
            b"%0d%0a",
            b"*",
            b"{tag}",
            b"A\r\nB",
            b"\xff\xfe",
            b"A;rm",
            b"\xc3\x84",
        ] {
            assert_eq!(
                Ticker::parse(bad),
                Err(InvalidTicker::BadCharacter),
                "{bad:?}"
            );
        }
    }
}
