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
