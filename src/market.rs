//! Which market's clock a ticker follows. In order: the operator's `[markets.tickers]`
//! overrides; the Yahoo symbol suffix (`.L` London, `.T` Tokyo, `=X` currency pairs, ...); crypto
//! pairs (`BTC-USD`); the provider's own metadata about the instrument (`quoteType`, `exchange`,
//! its time zone); else the NYSE. Pure: the table in docs/market-time.md is this file.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::calendar::{ALWAYS_OPEN, Calendar, FX, Markets, XNYS};
use crate::model::Listing;

/// Yahoo symbol suffixes and the market each names (help.yahoo.com/kb/SLN2310.html).
const SUFFIXES: &[(&str, &str)] = &[
    (".L", "XLON"),
    (".DE", "XETR"),
    (".PA", "XPAR"),
    (".AS", "XAMS"),
    (".SW", "XSWX"),
    (".CO", "XCSE"),
    (".ST", "XSTO"),
    (".OL", "XOSL"),
    (".MI", "XMIL"),
    (".TO", "XTSE"),
    // TSX Venture trades the TSX's hours and holidays.
    (".V", "XTSE"),
    (".T", "XTKS"),
    (".HK", "XHKG"),
    (".AX", "XASX"),
    ("=X", FX),
];

/// What a crypto pair is quoted in: fiat currencies Yahoo lists pairs in, stablecoins, and the
/// two coins other coins are priced in. `BRK-B` and `BF-B` are share classes: `B` is none of
/// these.
const PAIR_QUOTES: &[&str] = &[
    "USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "CNY", "HKD", "SGD", "KRW", "INR", "BRL",
    "RUB", "TRY", "ZAR", "NZD", "SEK", "NOK", "DKK", "PLN", "MXN", "USDT", "USDC", "DAI", "BUSD",
    "FDUSD", "TUSD", "BTC", "ETH",
];

/// The market of a Yahoo `exchange` code (v7 quote `exchange`, v8 chart `exchangeName`).
/// Seen in recorded answers: NMS, NGM, NCM, NYQ, GER, LSE, CPH, OSL, MIL, TOR, JPX, ASX, CCC, CCY.
/// The rest follow Yahoo's naming of the same exchanges.
fn exchange_market(code: &str) -> Option<&'static str> {
    Some(match code {
        "NMS" | "NGM" | "NCM" | "NYQ" | "NAS" | "ASE" | "PCX" | "BTS" => XNYS,
        "GER" => "XETR",
        "LSE" => "XLON",
        "CPH" => "XCSE",
        "OSL" => "XOSL",
        "MIL" => "XMIL",
        "PAR" => "XPAR",
        "AMS" => "XAMS",
        "EBS" => "XSWX",
        "STO" => "XSTO",
        "TOR" => "XTSE",
        "JPX" => "XTKS",
        "HKG" => "XHKG",
        "ASX" => "XASX",
        "CCC" => ALWAYS_OPEN,
        "CCY" => FX,
        _ => return None,
    })
}

/// Why a ticker was placed on its market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `[markets.tickers]`.
    Override,
    /// The symbol's suffix (the suffix).
    Suffix(&'static str),
    /// A crypto pair such as `BTC-USD`.
    CryptoPair,
    /// The provider's metadata for the instrument (what decided: quoteType or exchange).
    Metadata(&'static str),
    /// The market the stock job recorded for the ticker (the stock key's `calendar`).
    Recorded,
    /// Nothing placed it: the NYSE.
    Default,
}

impl Source {
    /// Placed by the symbol or the config, which nothing the provider says overrides.
    pub fn by_name(self) -> bool {
        matches!(
            self,
            Source::Override | Source::Suffix(_) | Source::CryptoPair
        )
    }

    pub fn describe(self) -> String {
        match self {
            Source::Override => "markets.tickers".to_owned(),
            Source::Suffix(s) => format!("symbol suffix {s}"),
            Source::CryptoPair => "crypto pair".to_owned(),
            Source::Metadata(what) => format!("provider {what}"),
            Source::Recorded => "the stock key's calendar".to_owned(),
            Source::Default => "default (no rule matched)".to_owned(),
        }
    }
}

/// A ticker's market and why.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    pub calendar: &'a Calendar,
    pub source: Source,
}

/// A market name the configuration uses that no calendar has.
#[derive(Debug, thiserror::Error)]
#[error("markets.tickers.{ticker:?}: unknown market {market:?} (known: {known})")]
pub struct UnknownMarket {
    pub ticker: String,
    pub market: String,
    pub known: String,
}

/// Places tickers on markets.
#[derive(Debug, Clone)]
pub struct Resolver {
    markets: Markets,
    /// Upper-case ticker to market name, every name known.
    overrides: BTreeMap<String, String>,
}

impl Resolver {
    pub fn new(
        markets: Markets,
        overrides: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Resolver, UnknownMarket> {
        let mut checked = BTreeMap::new();
        for (ticker, market) in overrides {
            // Environment variables arrive lower-cased; market names are upper case.
            let market = market.to_ascii_uppercase();
            if markets.get(&market).is_none() {
                let known: Vec<&str> = markets.iter().map(Calendar::id).collect();
                return Err(UnknownMarket {
                    ticker,
                    market,
                    known: known.join(", "),
                });
            }
            checked.insert(ticker.to_ascii_uppercase(), market);
        }
        Ok(Resolver {
            markets,
            overrides: checked,
        })
    }

    pub fn markets(&self) -> &Markets {
        &self.markets
    }

    /// The market from the symbol alone (override, suffix, crypto pair), if it tells.
    pub fn by_symbol(&self, symbol: &str) -> Option<Placement<'_>> {
        // Tickers arrive normalised (upper case); only a hand-typed symbol needs a copy.
        let upper: Cow<'_, str> = if symbol.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(symbol.to_ascii_uppercase())
        } else {
            Cow::Borrowed(symbol)
        };
        let placed = |id: &str, source| {
            self.markets
                .get(id)
                .map(|calendar| Placement { calendar, source })
        };
        if let Some(id) = self.overrides.get(upper.as_ref()) {
            return placed(id, Source::Override);
        }
        // Most tickers (US listings) have neither a suffix nor a pair's dash: one scan says so.
        let cut = upper.rfind(['.', '=', '-']).filter(|&i| i > 0)?;
        if let Some((suffix, id)) = SUFFIXES.iter().find(|(s, _)| *s == &upper[cut..]) {
            return placed(id, Source::Suffix(suffix));
        }
        if is_crypto_pair(&upper) {
            return placed(ALWAYS_OPEN, Source::CryptoPair);
        }
        None
    }

    /// The market from the provider's metadata, if it names one we know and its time zone (when
    /// given) agrees.
    pub fn by_listing(&self, listing: &Listing) -> Option<Placement<'_>> {
        let (id, what) = match listing.quote_type.as_deref() {
            Some("CRYPTOCURRENCY") => (ALWAYS_OPEN, "quoteType"),
            Some("CURRENCY") => (FX, "quoteType"),
            _ => (exchange_market(listing.exchange.as_deref()?)?, "exchange"),
        };
        let calendar = self.markets.get(id)?;
        // A listing whose zone is not its exchange's is not what the table assumes (24/7 and FX
        // are quoted in the zone of whoever quotes them).
        let zone_disagrees = listing.timezone.as_deref().is_some_and(|tz| {
            what == "exchange" && id != ALWAYS_OPEN && id != FX && tz != calendar.timezone().name()
        });
        (!zone_disagrees).then_some(Placement {
            calendar,
            source: Source::Metadata(what),
        })
    }

    /// The market the stock job recorded for a ticker (the stock value's `calendar`), else the
    /// NYSE: for a ticker its symbol does not place.
    pub fn by_record(&self, recorded: Option<&str>) -> Placement<'_> {
        recorded
            .and_then(|id| self.markets.get(id))
            .map_or(self.fallback(), |calendar| Placement {
                calendar,
                source: Source::Recorded,
            })
    }

    /// The market the symbol names, else the one recorded for it.
    pub fn resolve_recorded(&self, symbol: &str, recorded: Option<&str>) -> Placement<'_> {
        self.by_symbol(symbol)
            .unwrap_or_else(|| self.by_record(recorded))
    }

    /// The market of a ticker whose quote carried `listing` (if any).
    pub fn resolve(&self, symbol: &str, listing: Option<&Listing>) -> Placement<'_> {
        self.by_symbol(symbol)
            .or_else(|| listing.and_then(|l| self.by_listing(l)))
            .unwrap_or(self.fallback())
    }

    /// Where a ticker nothing places goes: the NYSE.
    pub fn fallback(&self) -> Placement<'_> {
        Placement {
            calendar: self.markets.xnys(),
            source: Source::Default,
        }
    }
}

/// `BASE-QUOTE` with a quote currency, stablecoin or quoting coin, and a base of 2 to 10 letters
/// or digits (`BTC-USD`, `ETH-EUR`, `1INCH-USD`).
fn is_crypto_pair(upper: &str) -> bool {
    let Some((base, quote)) = upper.split_once('-') else {
        return false;
    };
    (2..=10).contains(&base.len())
        && base.bytes().all(|b| b.is_ascii_alphanumeric())
        && PAIR_QUOTES.contains(&quote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_pairs_are_not_share_classes() {
        for pair in ["BTC-USD", "ETH-EUR", "SOL-USDT", "1INCH-USD", "ETH-BTC"] {
            assert!(is_crypto_pair(pair), "{pair}");
        }
        for not in ["BRK-B", "BF-B", "AAPL", "X-USD", "BRK-A", "ABC-WS", "-USD"] {
            assert!(!is_crypto_pair(not), "{not}");
        }
    }
}
