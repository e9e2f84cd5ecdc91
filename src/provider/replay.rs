//! Replay: recorded Yahoo answers served offline through the same parsers as the live provider,
//! so `demo` and the tests exercise real parsing with no network.
//!
//! Any ticker maps onto a recording deterministically: its own when one exists, else one chosen
//! by the ticker's stable hash, relabelled with the ticker (contract symbols too). Every value
//! says `source: "replay"`, so replayed data is never mistaken for market data.

use std::path::Path;

use async_trait::async_trait;
use chrono::Utc;
use chrono_tz::Tz;
use serde_json::Value;

use crate::keys::CacheKind;
use crate::model::{Earnings, Listing, OptionsChain, StockQuote};
use crate::provider::api::{Fetched, Provider, ProviderError, SetupError, TickerResult};
use crate::provider::http::Reply;
use crate::provider::yahoo::{self, OptionsPage};
use crate::ticker::Ticker;

const NAME: &str = "replay";

/// The recordings compiled into the program (the repository's `tests/fixtures/yahoo`).
const EMBEDDED: &[(&str, &[u8])] = &[
    (
        "quote_AAPL_2026-10.json",
        include_bytes!("../../tests/fixtures/yahoo/quote_AAPL_2026-10.json"),
    ),
    (
        "quote_AAPL_BABA_multi_symbol.json",
        include_bytes!("../../tests/fixtures/yahoo/quote_AAPL_BABA_multi_symbol.json"),
    ),
    (
        "quote_QQQ_etf.json",
        include_bytes!("../../tests/fixtures/yahoo/quote_QQQ_etf.json"),
    ),
    (
        "quote_BTC-USD_crypto.json",
        include_bytes!("../../tests/fixtures/yahoo/quote_BTC-USD_crypto.json"),
    ),
    (
        "quote_MSFT_fields_beta.json",
        include_bytes!("../../tests/fixtures/yahoo/quote_MSFT_fields_beta.json"),
    ),
    (
        "quote_v7_OCDO.L_LSE_REGULAR_2025-02-17.json",
        include_bytes!("../../tests/fixtures/yahoo/quote_v7_OCDO.L_LSE_REGULAR_2025-02-17.json"),
    ),
    (
        "quote_v7_GS2C.DE_XETRA_REGULAR_2025-10-27_wire.json",
        include_bytes!(
            "../../tests/fixtures/yahoo/quote_v7_GS2C.DE_XETRA_REGULAR_2025-10-27_wire.json"
        ),
    ),
    (
        "quote_v7_ORSTED.CO_CPH_REGULAR_2025-02-17.json",
        include_bytes!("../../tests/fixtures/yahoo/quote_v7_ORSTED.CO_CPH_REGULAR_2025-02-17.json"),
    ),
    (
        "quote_v7_7203.T_JPX_Tokyo_REGULAR_2026-05-28_reserialized.json",
        include_bytes!(
            "../../tests/fixtures/yahoo/quote_v7_7203.T_JPX_Tokyo_REGULAR_2026-05-28_reserialized.json"
        ),
    ),
    (
        "quote_v7_EURUSD=X_CCY_CURRENCY_2025-02-17.json",
        include_bytes!("../../tests/fixtures/yahoo/quote_v7_EURUSD=X_CCY_CURRENCY_2025-02-17.json"),
    ),
    (
        "options_AAPL_nearest_expiry.json",
        include_bytes!("../../tests/fixtures/yahoo/options_AAPL_nearest_expiry.json"),
    ),
    (
        "options_EBAY_nearest_expiry.json",
        include_bytes!("../../tests/fixtures/yahoo/options_EBAY_nearest_expiry.json"),
    ),
    (
        "options_BFLY_nearest_expiry.json",
        include_bytes!("../../tests/fixtures/yahoo/options_BFLY_nearest_expiry.json"),
    ),
    (
        "options_CRON_nearest_expiry.json",
        include_bytes!("../../tests/fixtures/yahoo/options_CRON_nearest_expiry.json"),
    ),
    (
        "options_BTC-USD_no_options.json",
        include_bytes!("../../tests/fixtures/yahoo/options_BTC-USD_no_options.json"),
    ),
    (
        "options_EURUSD=X_no_options.json",
        include_bytes!("../../tests/fixtures/yahoo/options_EURUSD=X_no_options.json"),
    ),
    (
        "quoteSummary_calendarEvents_AAPL.json",
        include_bytes!("../../tests/fixtures/yahoo/quoteSummary_calendarEvents_AAPL.json"),
    ),
    (
        "quoteSummary_calendarEvents_AMZN.json",
        include_bytes!("../../tests/fixtures/yahoo/quoteSummary_calendarEvents_AMZN.json"),
    ),
    (
        "quoteSummary_calendarEvents_GOOG.json",
        include_bytes!("../../tests/fixtures/yahoo/quoteSummary_calendarEvents_GOOG.json"),
    ),
    (
        "quoteSummary_calendarEvents_ABBV.json",
        include_bytes!("../../tests/fixtures/yahoo/quoteSummary_calendarEvents_ABBV.json"),
    ),
    (
        "quoteSummary_calendarEvents_QQQ_404_no_fundamentals.json",
        include_bytes!(
            "../../tests/fixtures/yahoo/quoteSummary_calendarEvents_QQQ_404_no_fundamentals.json"
        ),
    ),
    (
        "quoteSummary_calendarEvents_BTC-USD_404_no_fundamentals.json",
        include_bytes!(
            "../../tests/fixtures/yahoo/quoteSummary_calendarEvents_BTC-USD_404_no_fundamentals.json"
        ),
    ),
    (
        "quoteSummary_calendarEvents_BABA.json",
        include_bytes!("../../tests/fixtures/yahoo/quoteSummary_calendarEvents_BABA.json"),
    ),
    (
        "quoteSummary_calendarEvents_OCDO.L.json",
        include_bytes!("../../tests/fixtures/yahoo/quoteSummary_calendarEvents_OCDO.L.json"),
    ),
    (
        "quoteSummary_calendarEvents_ORSTED.CO.json",
        include_bytes!("../../tests/fixtures/yahoo/quoteSummary_calendarEvents_ORSTED.CO.json"),
    ),
    (
        "quoteSummary_calendarEvents_EURUSD=X_404_no_fundamentals.json",
        include_bytes!(
            "../../tests/fixtures/yahoo/quoteSummary_calendarEvents_EURUSD=X_404_no_fundamentals.json"
        ),
    ),
];

/// A recorded value and the symbol it was recorded for.
struct Recording<T> {
    symbol: Ticker,
    value: T,
}

/// Fetches a job keeps going against the replay provider: its answers cost no waiting, so a
/// few keep the pipeline busy.
const REPLAY_CONCURRENCY: usize = 16;

pub struct Replay {
    quotes: Vec<Recording<StockQuote>>,
    options: Vec<Recording<OptionsPage>>,
    /// Kept as answers, not values: their dates are read in the zone each call asks for.
    earnings: Vec<Recording<Reply>>,
}

impl Replay {
    /// Reads the recordings from `dir/yahoo/` (laid out like the repository's `tests/fixtures`),
    /// or the compiled-in ones when `dir` is `None`.
    pub fn load(dir: Option<&Path>, tz: Tz) -> Result<Replay, SetupError> {
        let files: Vec<(String, Vec<u8>)> = match dir {
            None => EMBEDDED
                .iter()
                .map(|(n, b)| ((*n).to_owned(), b.to_vec()))
                .collect(),
            Some(dir) => read_dir(&dir.join("yahoo"))?,
        };
        let mut replay = Replay {
            quotes: Vec::new(),
            options: Vec::new(),
            earnings: Vec::new(),
        };
        for (name, body) in files {
            replay.add(&name, body, tz);
        }
        for (kind, empty) in [
            ("quotes (yahoo/quote_*.json)", replay.quotes.is_empty()),
            (
                "options (yahoo/options_*_nearest_expiry.json)",
                replay.options.is_empty(),
            ),
            (
                "earnings (yahoo/quoteSummary_calendarEvents_*.json)",
                replay.earnings.is_empty(),
            ),
        ] {
            if empty {
                return Err(SetupError {
                    key: "provider.replay.dir".into(),
                    message: format!("no usable recordings of {kind}"),
                });
            }
        }
        Ok(replay)
    }

    /// Parses one recording by its file name; files that are not recordings of a known kind, or
    /// that the parsers reject, are skipped.
    fn add(&mut self, name: &str, body: Vec<u8>, tz: Tz) {
        let now = Utc::now();
        if name.starts_with("quote_") {
            let symbols: Vec<Ticker> = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| {
                    v.pointer("/quoteResponse/result")
                        .and_then(Value::as_array)
                        .cloned()
                })
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e.get("symbol")?.as_str()?.parse().ok())
                .collect();
            for (symbol, result) in
                yahoo::parse_quotes(&Reply::recorded(200, body), &symbols, tz, NAME, now)
            {
                if let Ok(Fetched::Found(value)) = result {
                    self.quotes.push(Recording { symbol, value });
                }
            }
        } else if name.starts_with("options_")
            && (name.contains("_nearest_expiry") || name.contains("_no_options"))
        {
            let Some(symbol) = recorded_symbol(name, "options_") else {
                return;
            };
            if let Ok(Some(value)) = yahoo::parse_options_page(&Reply::recorded(200, body), &symbol)
            {
                self.options.push(Recording { symbol, value });
            }
        } else if name.starts_with("quoteSummary_calendarEvents_") {
            let Some(symbol) = recorded_symbol(name, "quoteSummary_calendarEvents_") else {
                return;
            };
            let status = if name.contains("_404_") { 404 } else { 200 };
            let value = Reply::recorded(status, body);
            if let Ok(Fetched::Found(_)) = yahoo::parse_earnings(&value, &symbol, tz, NAME, now) {
                self.earnings.push(Recording { symbol, value });
            }
        }
    }

    /// Whether `ticker` has a `kind` recording of its own; without one it is served another
    /// instrument's, relabelled, which `demo` must not pass off as the ticker's.
    pub fn has_own(&self, kind: CacheKind, ticker: &Ticker) -> bool {
        fn among<T>(recordings: &[Recording<T>], ticker: &Ticker) -> bool {
            recordings.iter().any(|r| r.symbol == *ticker)
        }
        match kind {
            CacheKind::Stock => among(&self.quotes, ticker),
            CacheKind::Options => among(&self.options, ticker),
            CacheKind::Earnings => among(&self.earnings, ticker),
        }
    }
}

/// `options_EURUSD=X_no_options.json` -> `EURUSD=X`: the symbol is the part after the prefix
/// up to the next underscore (symbols have none).
fn recorded_symbol(name: &str, prefix: &str) -> Option<Ticker> {
    let rest = name.strip_prefix(prefix)?.trim_end_matches(".json");
    rest.split('_').next()?.parse().ok()
}

fn read_dir(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, SetupError> {
    let error = |e: std::io::Error| SetupError {
        key: "provider.replay.dir".into(),
        message: format!("{}: {e}", dir.display()),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(error)? {
        let path = entry.map_err(error)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name.ends_with(".json") {
            files.push((name, std::fs::read(&path).map_err(error)?));
        }
    }
    files.sort();
    Ok(files)
}

/// The recording for `ticker`: its own if there is one, else one picked by its stable hash.
fn pick<'a, T>(recordings: &'a [Recording<T>], ticker: &Ticker) -> &'a Recording<T> {
    recordings
        .iter()
        .find(|r| r.symbol == *ticker)
        .unwrap_or_else(|| &recordings[(ticker.stable_hash() % recordings.len() as u64) as usize])
}

/// An OCC option root: the symbol without punctuation.
fn root(ticker: &Ticker) -> String {
    ticker
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

#[async_trait]
impl Provider for Replay {
    fn name(&self) -> &'static str {
        NAME
    }

    fn quote_batch(&self) -> usize {
        50
    }

    /// Answers come from memory at once; this only sizes the fetches a job keeps going.
    fn max_concurrency(&self) -> usize {
        REPLAY_CONCURRENCY
    }

    async fn quotes(&self, tickers: &[Ticker]) -> Vec<(Ticker, TickerResult<StockQuote>)> {
        tickers
            .iter()
            .map(|ticker| {
                let recording = pick(&self.quotes, ticker);
                let mut quote = recording.value.clone();
                if recording.symbol != *ticker {
                    // Another instrument's listing would put the ticker on that one's market.
                    quote.listing = Listing::default();
                }
                quote.symbol = ticker.to_string();
                quote.fetched_at = Utc::now();
                let result = quote
                    .validate(ticker)
                    .map(|()| Fetched::Found(quote))
                    .map_err(|r| ProviderError::invalid(NAME, ticker, r));
                (ticker.clone(), result)
            })
            .collect()
    }

    async fn options(&self, ticker: &Ticker, expirations: usize) -> TickerResult<OptionsChain> {
        let recording = pick(&self.options, ticker);
        let (from, to) = (root(&recording.symbol), root(ticker));
        let mut chains = recording.value.recorded_chains(expirations);
        for contract in chains
            .iter_mut()
            .flat_map(|c| c.calls.iter_mut().chain(c.puts.iter_mut()))
        {
            if let Some(rest) = contract.contract_symbol.strip_prefix(&from) {
                contract.contract_symbol = format!("{to}{rest}");
            }
        }
        let chain = recording.value.to_chain(ticker, chains, NAME, Utc::now());
        chain
            .validate(ticker)
            .map_err(|r| ProviderError::invalid(NAME, ticker, r))?;
        Ok(Fetched::Found(chain))
    }

    async fn earnings(&self, ticker: &Ticker, zone: Tz) -> TickerResult<Earnings> {
        // Parsed for the ticker asked, which relabels the recording.
        yahoo::parse_earnings(
            &pick(&self.earnings, ticker).value,
            ticker,
            zone,
            NAME,
            Utc::now(),
        )
    }
}
