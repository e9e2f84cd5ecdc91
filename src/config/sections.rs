//! The settings, one struct per section of the file, as `config/default.toml` lays them out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::secrets::{RedisUrl, Secret};
use super::values::{ByteSize, Fraction, HttpUrl, HumanDuration, IsoDate, Zone};
use crate::schedule::Schedule;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    pub market: MarketSettings,
    #[serde(default)]
    pub markets: MarketsSettings,
    pub ttl: TtlSettings,
    pub provider: ProviderSettings,
    pub scheduler: SchedulerSettings,
    pub requests: RequestsSettings,
    pub integrity: IntegritySettings,
    pub jobs: JobsSettings,
    pub cache: CacheSettings,
    pub status: StatusSettings,
    pub telemetry: TelemetrySettings,
}

/// Where metrics go besides the daemon's `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// A Prometheus Pushgateway that `once` pushes its run's metrics to (CronJob mode, where
    /// nothing stays up to be scraped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushgateway_url: Option<HttpUrl>,
    /// An OTLP/HTTP endpoint (a Collector's `:4318`) that traces of every run go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<HttpUrl>,
}

/// What `status` (and its exit code) call healthy, beyond the jobs' recent successes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSettings {
    /// The least share of the watchlist each enabled kind must have cached.
    pub min_coverage: f64,
}

/// How cached values are stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    pub compress: Compression,
    /// Values of at least this size are compressed (when `compress` is on).
    pub compress_min_bytes: ByteSize,
    /// Values larger than this after compression are not written.
    pub max_value_bytes: ByteSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegritySettings {
    pub grace: HumanDuration,
    pub dry_run: bool,
    pub scan_count: u32,
    pub prune_unwatched: bool,
    /// A prune that would delete more than this fraction of the cache keys is skipped.
    pub prune_max_fraction: f64,
    pub rules: Vec<IntegrityRule>,
}

/// `[[integrity.rules]]`: an index set (or a pattern of them) and the object key its members
/// point to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityRule {
    pub index: String,
    pub member_key: String,
    #[serde(default)]
    pub reindex: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_pattern: Option<String>,
    /// The Redis type of the objects (`reindex` only); default `string`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
}

/// What `object_type` may name: the types `SCAN ... TYPE` filters on.
pub const OBJECT_TYPES: [&str; 6] = ["string", "hash", "list", "set", "zset", "stream"];

impl IntegrityRule {
    /// The type `reindex` looks for: keys of another type under `object_pattern` are not
    /// objects (a `finance:position:42:history` list is not position `42:history`).
    pub fn object_type(&self) -> &str {
        self.object_type.as_deref().unwrap_or("string")
    }

    /// Whether `index` names many sets (a glob pattern) rather than one.
    pub fn is_pattern(&self) -> bool {
        self.index.contains(['*', '?', '['])
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `host:port` of the HTTP endpoint; empty disables it.
    pub listen: String,
}

impl ServerSettings {
    /// The address to listen on, if the endpoint is enabled.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse().ok()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    pub shutdown_grace: HumanDuration,
    pub lock_ttl: HumanDuration,
    pub batch_size: u32,
    /// A write batch also closes once its values reach this many bytes.
    pub write_batch_bytes: ByteSize,
    pub scan_count: u32,
}

/// `[requests]`: warm requests the app adds to the stream `finance:warmer:requests`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsSettings {
    pub enabled: bool,
    pub group: String,
    pub poll_interval: HumanDuration,
    pub claim_after: HumanDuration,
    pub max_len: u32,
    /// Also warm what is added to the watchlist, noticed by keyspace notifications.
    pub keyspace_notifications: bool,
}

/// `requests.claim_after` at least: an entry is claimed from a replica that has not
/// acknowledged it for this long, and a warm takes a second or two.
pub const MIN_CLAIM_AFTER: Duration = Duration::from_secs(5);
/// `requests.poll_interval` at most: it is how long a request may wait to be seen.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: RedisUrl,
    /// Resolved at load time from `password_file` when that is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: HumanDuration,
    pub response_timeout: HumanDuration,
    pub cluster_nodes: Vec<RedisUrl>,
    pub sentinel: SentinelSettings,
}

/// `[redis.sentinel]`: a primary with replicas under Redis Sentinel, found through the sentinels
/// rather than named by `url`. In use when `nodes` is not empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelSettings {
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> ...`).
    pub master_name: String,
    /// The sentinels themselves (`redis://host:26379`, `rediss://` for TLS to them).
    pub nodes: Vec<RedisUrl>,
    /// The data nodes' ACL user ("" for none); their password is `redis.password`.
    pub username: String,
    pub db: u32,
    /// TLS to the primary (a private CA in `redis.ca_file`).
    pub tls: bool,
    /// The sentinels' own ACL user and password, when they require them.
    pub sentinel_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel_password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel_password_file: Option<PathBuf>,
}

impl SentinelSettings {
    pub fn in_use(&self) -> bool {
        !self.nodes.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
    /// Pretty for a person at a terminal, JSON for a machine (systemd, Kubernetes, a pipe).
    Auto,
}

impl LogFormat {
    /// The format to write: `Auto` decided by whether a person reads stderr (`at_terminal`).
    pub fn resolved(self, at_terminal: bool) -> LogFormat {
        match self {
            LogFormat::Auto if at_terminal => LogFormat::Pretty,
            LogFormat::Auto => LogFormat::Json,
            chosen => chosen,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketSettings {
    pub timezone: Zone,
    pub extra_holidays: Vec<IsoDate>,
}

/// `[markets]`: which market's clock a ticker follows, where its symbol does not say.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketsSettings {
    /// Ticker to market name (`"XYZ" = "XLON"`), tried before any other rule.
    #[serde(default)]
    pub tickers: BTreeMap<String, String>,
}

/// At most this many `market.extra_holidays`: they are for rare announced closures, and the
/// calendar's search for the next session relies on closed runs being short.
pub const MAX_EXTRA_HOLIDAYS: usize = 100;

/// `scheduler.write_batch_bytes` accepted: from a few quotes to what one pipeline should carry
/// (Redis holds a whole pipeline in its query buffer, and so does the daemon).
pub(super) const WRITE_BATCH_BYTES: std::ops::RangeInclusive<u64> = 4096..=(256 << 20);

/// The smallest `cache.max_value_bytes` accepted: a quote is about 400 bytes.
pub(super) const MIN_VALUE_CAP: u64 = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtlSettings {
    pub open: HumanDuration,
    pub closed: HumanDuration,
    pub min: HumanDuration,
    pub earnings_min: HumanDuration,
    pub earnings_max: HumanDuration,
    pub earnings_unknown: HumanDuration,
    pub jitter: f64,
    /// US extended hours (pre/post-market) for stock keys: their cap. Unset: they count as
    /// closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended: Option<HumanDuration>,
    pub options: OptionsTtlSettings,
    /// `[ttl.markets.<market>]`: open/closed/min for one market's stock and options keys.
    #[serde(default)]
    pub markets: BTreeMap<String, MarketTtlSettings>,
}

/// `[ttl.options]`: each key but `none` falls back to `[ttl]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsTtlSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<HumanDuration>,
    /// An instrument with no options (an empty chain): asked again after this long.
    pub none: HumanDuration,
}

/// `[ttl.markets.<market>]`: each key falls back to `[ttl.options]` (options keys) and `[ttl]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketTtlSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<HumanDuration>,
}

/// A market-data provider's name in `provider.stock` and the other chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Yahoo,
    Polygon,
    Tradier,
    Finnhub,
    Replay,
}

impl ProviderName {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderName::Yahoo => "yahoo",
            ProviderName::Polygon => "polygon",
            ProviderName::Tradier => "tradier",
            ProviderName::Finnhub => "finnhub",
            ProviderName::Replay => "replay",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub stock: Vec<ProviderName>,
    pub options: Vec<ProviderName>,
    pub earnings: Vec<ProviderName>,
    pub timeout: HumanDuration,
    pub connect_timeout: HumanDuration,
    pub max_body: ByteSize,
    pub max_retries: u32,
    pub breaker_failures: u32,
    pub breaker_cooldown: HumanDuration,
    pub user_agent: String,
    pub yahoo: YahooSettings,
    pub polygon: PolygonSettings,
    pub tradier: TradierSettings,
    pub finnhub: FinnhubSettings,
    pub replay: ReplaySettings,
}

/// Limits every HTTP provider has.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    pub max_concurrency: u32,
    pub requests_per_second: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YahooSettings {
    pub base_url: HttpUrl,
    pub cookie_url: HttpUrl,
    /// Yahoo's own User-Agent: it refuses the crumb to ones it does not like.
    pub user_agent: String,
    pub max_concurrency: u32,
    pub requests_per_second: f64,
    pub quote_batch: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolygonSettings {
    pub base_url: HttpUrl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    pub max_concurrency: u32,
    pub requests_per_second: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradierSettings {
    pub base_url: HttpUrl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    pub max_concurrency: u32,
    pub requests_per_second: f64,
    pub quote_batch: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinnhubSettings {
    pub base_url: HttpUrl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    pub max_concurrency: u32,
    pub requests_per_second: f64,
    /// The earnings calendar is asked for today to today + this.
    pub window: HumanDuration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

/// `limits()` for each HTTP provider's settings, which all carry the two fields.
macro_rules! provider_limits {
    ($($settings:ty),+) => {$(
        impl $settings {
            pub fn limits(&self) -> Limits {
                Limits {
                    max_concurrency: self.max_concurrency,
                    requests_per_second: self.requests_per_second,
                }
            }
        }
    )+};
}

provider_limits!(
    YahooSettings,
    PolygonSettings,
    TradierSettings,
    FinnhubSettings
);

/// The shortest lock lease: renewals every third of it must fit several Redis round trips.
pub const MIN_LOCK_TTL: Duration = Duration::from_secs(3);
/// Largest batch or SSCAN COUNT: bigger pipelines only add latency and memory.
pub const MAX_BATCH: u32 = 10_000;

/// Most symbols one quote request may carry.
pub const MAX_QUOTE_BATCH: u32 = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    pub stock: JobSettings,
    pub options: JobSettings,
    pub earnings: JobSettings,
    pub integrity: JobSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub enabled: bool,
    pub schedule: Schedule,
    pub timeout: HumanDuration,
    pub max_failure_ratio: f64,
    pub refresh_ahead: f64,
    pub run_on_start: bool,
    /// `jobs.options` only: how many of the nearest expiries to fetch (0 = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expirations: Option<u32>,
    /// `jobs.options` only: keep contracts whose strike is within this fraction of the
    /// underlying price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strike_window: Option<Fraction>,
    /// Warming jobs: refetch a value that would be older than this (by its `fetched_at`) before
    /// the next run could refresh it, whatever its TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<HumanDuration>,
}

impl JobsSettings {
    /// Every job's settings with its name, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &JobSettings)> {
        [
            ("stock", &self.stock),
            ("options", &self.options),
            ("earnings", &self.earnings),
            ("integrity", &self.integrity),
        ]
        .into_iter()
    }
}
