//! Typed settings, loaded in layers: the built-in defaults (`config/default.toml`, compiled in),
//! an optional TOML file, then `FCW_<SECTION>__<KEY>` environment variables.
//!
//! Everything is validated here, before any I/O elsewhere, and every problem names the key path,
//! the offending value and where the value came from, because a typo in a daemon's config must
//! stop it at start-up rather than be silently ignored. Secrets are wrapped in [`Secret`], which
//! neither `Debug` nor `Serialize` can reveal.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "FCW_";
/// systemd sets this to the directory of the service's `LoadCredential=` files.
pub const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";
/// Environment variable naming the config file (also `-c/--config`); not itself a key.
pub const CONFIG_PATH_ENV: &str = "FCW_CONFIG";
/// The documented defaults, which are also the real ones: the file is compiled in.
pub const DEFAULTS_TOML: &str = include_str!("../config/default.toml");

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    pub market: MarketSettings,
    pub ttl: TtlSettings,
    pub provider: ProviderSettings,
    pub scheduler: SchedulerSettings,
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

use crate::keys::MEMBER_PLACEHOLDER;

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
    pub scan_count: u32,
}

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketSettings {
    pub timezone: Zone,
    pub extra_holidays: Vec<IsoDate>,
}

/// At most this many `market.extra_holidays`: they are for rare announced closures, and the
/// calendar's search for the next session relies on closed runs being short.
pub const MAX_EXTRA_HOLIDAYS: usize = 100;

/// The smallest `cache.max_value_bytes` accepted: a quote is about 400 bytes.
const MIN_VALUE_CAP: u64 = 1024;

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
    pub options: OptionsTtlSettings,
}

/// `[ttl.options]`: each key falls back to `[ttl]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsTtlSettings {
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
    Replay,
}

impl ProviderName {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderName::Yahoo => "yahoo",
            ProviderName::Polygon => "polygon",
            ProviderName::Tradier => "tradier",
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
pub struct ReplaySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

impl YahooSettings {
    pub fn limits(&self) -> Limits {
        Limits {
            max_concurrency: self.max_concurrency,
            requests_per_second: self.requests_per_second,
        }
    }
}

impl PolygonSettings {
    pub fn limits(&self) -> Limits {
        Limits {
            max_concurrency: self.max_concurrency,
            requests_per_second: self.requests_per_second,
        }
    }
}

impl TradierSettings {
    pub fn limits(&self) -> Limits {
        Limits {
            max_concurrency: self.max_concurrency,
            requests_per_second: self.requests_per_second,
        }
    }
}

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

/// A configuration problem, always naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{key}: {message}{origin}")]
    Invalid {
        key: String,
        message: String,
        origin: Origin,
    },
}

/// Where a value came from, so an error can point at the line an operator must change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    #[default]
    Default,
    File(PathBuf),
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => Ok(()),
            Origin::File(path) => write!(f, " (in {})", path.display()),
            Origin::Env(var) => write!(f, " (from environment variable {var})"),
        }
    }
}

/// Loads the configuration from the process environment and an optional file.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    load_from(path, std::env::vars_os())
}

/// Loads the configuration from an explicit environment (tests pass their own).
pub fn load_from(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Settings, ConfigError> {
    let mut layers = Layers::defaults();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        layers.merge_file(table, path);
    }
    let mut env: Vec<_> = env.into_iter().collect();
    env.sort();
    for (name, value) in env {
        layers.apply_env(&name, &value)?;
    }
    layers.into_settings()
}

impl Settings {
    /// The effective configuration as TOML, every secret shown as `***`.
    pub fn to_redacted_toml(&self) -> String {
        // Serializing plain data (strings, numbers, tables) into TOML cannot fail.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The defaults alone, as the program runs with no file and no environment.
    pub fn defaults() -> Result<Settings, ConfigError> {
        Layers::defaults().into_settings()
    }
}

/// The merged TOML tree plus the origin of every value set above the defaults.
struct Layers {
    tree: toml::Table,
    origins: BTreeMap<String, Origin>,
    /// systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`): relative `*_file` paths are
    /// read from it.
    credentials: Option<PathBuf>,
    /// The config file's directory: relative `*_file` paths are read from it outside systemd,
    /// so `status` from a root shell finds the file the service gets as a credential.
    file_dir: Option<PathBuf>,
}

impl Layers {
    fn defaults() -> Self {
        // A syntax error in the compiled-in defaults is a build defect that every test catches.
        let tree = toml::from_str(DEFAULTS_TOML).expect("config/default.toml is valid TOML");
        Layers {
            tree,
            origins: BTreeMap::new(),
            credentials: None,
            file_dir: None,
        }
    }

    fn merge_file(&mut self, file: toml::Table, path: &Path) {
        self.file_dir = path.parent().map(Path::to_owned);
        merge_table(
            &mut self.tree,
            file,
            "",
            &Origin::File(path.to_owned()),
            &mut self.origins,
        );
    }

    fn apply_env(&mut self, name: &OsString, value: &OsString) -> Result<(), ConfigError> {
        let Some(name) = name.to_str() else {
            return Ok(()); // not ours: our variables are ASCII
        };
        if name == CREDENTIALS_ENV {
            self.credentials = Some(PathBuf::from(value));
            return Ok(());
        }
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            return Ok(());
        };
        if name == CONFIG_PATH_ENV {
            return Ok(());
        }
        let origin = Origin::Env(name.to_owned());
        let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let key = segments.join(".");
        let invalid = |message: String| ConfigError::Invalid {
            key: key.clone(),
            message,
            origin: origin.clone(),
        };
        if segments.iter().any(String::is_empty) {
            return Err(invalid("malformed variable name".into()));
        }
        let Some(value) = value.to_str() else {
            return Err(invalid("value is not valid UTF-8".into()));
        };
        let (leaf, parents) = segments.split_last().expect("split yields one segment");
        let mut table = &mut self.tree;
        for (i, segment) in parents.iter().enumerate() {
            let entry = table
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(invalid(format!(
                        "`{}` is not a section",
                        segments[..=i].join(".")
                    )));
                }
            };
        }
        let typed = coerce_env(value, table.get(leaf)).map_err(invalid)?;
        table.insert(leaf.clone(), typed);
        self.origins.insert(key, origin);
        Ok(())
    }

    fn into_settings(self) -> Result<Settings, ConfigError> {
        let Layers {
            tree,
            origins,
            credentials,
            file_dir,
        } = self;
        // The layer that set `key` or the nearest table above it. Arrays are set whole, so
        // `provider.stock[0]` is `provider.stock`'s; a key missing from a table belongs to the
        // layer that set something in that table.
        let origin_of = |key: &str| -> Origin {
            let whole = &key[..key.find('[').unwrap_or(key.len())];
            let mut key = whole;
            loop {
                if let Some(origin) = origins.get(key) {
                    return origin.clone();
                }
                match key.rfind('.') {
                    Some(dot) => key = &key[..dot],
                    None => break,
                }
            }
            let inside = format!("{whole}.");
            origins
                .iter()
                .find(|(k, _)| whole.is_empty() || k.starts_with(&inside))
                .map(|(_, origin)| origin.clone())
                .unwrap_or_default()
        };
        let mut settings: Settings = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                origin: origin_of(&key),
                message: e.into_inner().message().to_owned(),
                key,
            }
        })?;
        settings
            .resolve_secrets(credentials.or(file_dir).as_deref())
            .map_err(|(key, message)| {
                let origin = origin_of(&key);
                ConfigError::Invalid {
                    key,
                    message,
                    origin,
                }
            })?;
        settings.validate().map_err(|(key, message)| {
            let origin = origin_of(&key);
            ConfigError::Invalid {
                key,
                message,
                origin,
            }
        })?;
        Ok(settings)
    }
}

/// Tables merge key by key; anything else (including arrays) is replaced whole.
fn merge_table(
    base: &mut toml::Table,
    over: toml::Table,
    prefix: &str,
    origin: &Origin,
    origins: &mut BTreeMap<String, Origin>,
) {
    for (k, v) in over {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                merge_table(b, o, &path, origin, origins)
            }
            (_, v) => {
                origins.insert(path, origin.clone());
                base.insert(k, v);
            }
        }
    }
}

/// Environment values are strings; give them the type of the value they replace, so
/// `FCW_JOBS__STOCK__ENABLED=false` is a boolean while a numeric-looking password stays a string.
fn coerce_env(raw: &str, current: Option<&toml::Value>) -> Result<toml::Value, String> {
    use toml::Value;
    let expected = |what: &str| format!("expected {what}, got {raw:?}");
    Ok(match current {
        None | Some(Value::String(_)) => Value::String(raw.to_owned()),
        Some(Value::Integer(_)) => {
            Value::Integer(raw.trim().parse().map_err(|_| expected("an integer"))?)
        }
        Some(Value::Float(_)) => {
            Value::Float(raw.trim().parse().map_err(|_| expected("a number"))?)
        }
        Some(Value::Boolean(_)) => {
            Value::Boolean(raw.trim().parse().map_err(|_| expected("true or false"))?)
        }
        Some(Value::Array(_)) => {
            let trimmed = raw.trim();
            if trimmed.starts_with('[') {
                let table: toml::Table = toml::from_str(&format!("v = {trimmed}"))
                    .map_err(|_| expected("a TOML array"))?;
                table
                    .get("v")
                    .cloned()
                    .ok_or_else(|| expected("a TOML array"))?
            } else {
                Value::Array(
                    trimmed
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                )
            }
        }
        Some(Value::Table(_)) => return Err("is a section; set its keys instead".into()),
        Some(Value::Datetime(_)) => Value::String(raw.to_owned()),
    })
}

type KeyProblem = (String, String);

impl Settings {
    fn resolve_secrets(&mut self, credentials: Option<&Path>) -> Result<(), KeyProblem> {
        let p = &mut self.provider;
        resolve_secret(
            &mut self.redis.password,
            &self.redis.password_file,
            "redis.password",
            credentials,
        )?;
        resolve_secret(
            &mut p.polygon.api_key,
            &p.polygon.api_key_file,
            "provider.polygon.api_key",
            credentials,
        )?;
        resolve_secret(
            &mut p.tradier.token,
            &p.tradier.token_file,
            "provider.tradier.token",
            credentials,
        )
    }

    fn validate(&self) -> Result<(), KeyProblem> {
        let r = &self.redis;
        positive(&r.connect_timeout, "redis.connect_timeout")?;
        positive(&r.response_timeout, "redis.response_timeout")?;
        if let Some(ca) = &r.ca_file {
            let tls = match r.cluster_nodes.first() {
                Some(_) => r.cluster_nodes.iter().all(RedisUrl::is_tls),
                None => r.url.is_tls(),
            };
            if !tls {
                return Err((
                    "redis.ca_file".into(),
                    format!(
                        "set, but redis.url {} (or redis.cluster_nodes) does not use rediss://",
                        r.url
                    ),
                ));
            }
            std::fs::metadata(ca)
                .map_err(|e| ("redis.ca_file".into(), format!("{}: {e}", ca.display())))?;
        }
        if r.cluster_nodes
            .windows(2)
            .any(|w| w[0].is_tls() != w[1].is_tls())
        {
            return Err((
                "redis.cluster_nodes".into(),
                "mixes redis:// and rediss:// nodes".into(),
            ));
        }
        if self.market.extra_holidays.len() > MAX_EXTRA_HOLIDAYS {
            return Err((
                "market.extra_holidays".into(),
                format!(
                    "{} dates; at most {MAX_EXTRA_HOLIDAYS} are allowed",
                    self.market.extra_holidays.len()
                ),
            ));
        }
        if !self.server.listen.is_empty() && self.server.address().is_none() {
            return Err((
                "server.listen".into(),
                format!(
                    "{:?} is not host:port (e.g. \"127.0.0.1:9184\"), or \"\" to disable",
                    self.server.listen
                ),
            ));
        }
        self.validate_ttl()?;
        self.validate_providers()?;
        self.validate_integrity()?;
        for (name, job) in self.jobs.iter() {
            if name != "options" && job.expirations.is_some() {
                return Err((
                    format!("jobs.{name}.expirations"),
                    "only jobs.options has expirations".into(),
                ));
            }
            if name != "options" && job.strike_window.is_some() {
                return Err((
                    format!("jobs.{name}.strike_window"),
                    "only jobs.options has a strike window".into(),
                ));
            }
            if name == "integrity" && job.max_age.is_some() {
                return Err((
                    "jobs.integrity.max_age".into(),
                    "only the warming jobs (stock, options, earnings) have a max_age".into(),
                ));
            }
        }
        if self.cache.max_value_bytes.0 < MIN_VALUE_CAP {
            return Err((
                "cache.max_value_bytes".into(),
                format!(
                    "{} is below {}, smaller than a single quote",
                    self.cache.max_value_bytes,
                    ByteSize(MIN_VALUE_CAP)
                ),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            (
                "log.level".into(),
                format!("invalid filter {:?}: {e}", self.log.level),
            )
        })?;
        self.validate_schedule_gaps()?;
        for (name, job) in self.jobs.iter() {
            positive(&job.timeout, &format!("jobs.{name}.timeout"))?;
            if let Some(max_age) = &job.max_age {
                positive(max_age, &format!("jobs.{name}.max_age"))?;
            }
            for (key, value) in [
                ("max_failure_ratio", job.max_failure_ratio),
                ("refresh_ahead", job.refresh_ahead),
            ] {
                if !(0.0..=1.0).contains(&value) {
                    return Err((
                        format!("jobs.{name}.{key}"),
                        format!("{value} is not a fraction in [0, 1]"),
                    ));
                }
            }
        }
        let sch = &self.scheduler;
        positive(&sch.shutdown_grace, "scheduler.shutdown_grace")?;
        if sch.lock_ttl.get() < MIN_LOCK_TTL {
            return Err((
                "scheduler.lock_ttl".into(),
                format!(
                    "{} is below the {} minimum",
                    sch.lock_ttl,
                    HumanDuration(MIN_LOCK_TTL)
                ),
            ));
        }
        for (key, value) in [
            ("scheduler.batch_size", sch.batch_size),
            ("scheduler.scan_count", sch.scan_count),
        ] {
            if !(1..=MAX_BATCH).contains(&value) {
                return Err((key.into(), format!("{value} is outside 1..={MAX_BATCH}")));
            }
        }
        Ok(())
    }
}

impl Settings {
    /// A warming job's values live until its next run can have rewritten them (see
    /// `jobs::warm`), but never longer than `ttl.earnings_max`: a schedule whose runs can be
    /// further apart than that, with the timeout, would let values lapse between runs.
    fn validate_schedule_gaps(&self) -> Result<(), KeyProblem> {
        let longest_life = self.ttl.earnings_max.get();
        for (name, job) in self.jobs.iter().filter(|(name, _)| *name != "integrity") {
            let limit = longest_life.saturating_sub(job.timeout.get());
            let gap = job.schedule.longest_gap_over(
                self.market.timezone.0,
                chrono::Utc::now(),
                chrono::Duration::from_std(limit).unwrap_or(chrono::TimeDelta::MAX),
            );
            if let Some(gap) = gap.and_then(|g| g.to_std().ok()) {
                return Err((
                    format!("jobs.{name}.schedule"),
                    format!(
                        "up to {} pass between its runs; with the {} timeout that is longer than ttl.earnings_max ({}), the longest a cached value may live, so values would lapse between runs: run it more often or raise ttl.earnings_max",
                        format_args!(
                            "{}d {}h",
                            gap.as_secs() / 86_400,
                            gap.as_secs() % 86_400 / 3_600
                        ),
                        job.timeout,
                        self.ttl.earnings_max
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_ttl(&self) -> Result<(), KeyProblem> {
        let t = &self.ttl;
        let o = &t.options;
        let named = [
            ("ttl.open", Some(t.open)),
            ("ttl.closed", Some(t.closed)),
            ("ttl.min", Some(t.min)),
            ("ttl.earnings_min", Some(t.earnings_min)),
            ("ttl.earnings_max", Some(t.earnings_max)),
            ("ttl.earnings_unknown", Some(t.earnings_unknown)),
            ("ttl.options.open", o.open),
            ("ttl.options.closed", o.closed),
            ("ttl.options.min", o.min),
        ];
        for (key, value) in named {
            if let Some(d) = value {
                let d = d.get();
                if d.subsec_nanos() != 0 || d.is_zero() {
                    return Err((
                        key.into(),
                        format!(
                            "{} must be a whole number of seconds, at least 1s",
                            HumanDuration(d)
                        ),
                    ));
                }
            }
        }
        let options_min = o.min.unwrap_or(t.min);
        for (key, value, min, min_key) in [
            ("ttl.open", t.open, t.min, "ttl.min"),
            ("ttl.closed", t.closed, t.min, "ttl.min"),
            (
                "ttl.options.open",
                o.open.unwrap_or(t.open),
                options_min,
                "ttl.options.min",
            ),
            (
                "ttl.options.closed",
                o.closed.unwrap_or(t.closed),
                options_min,
                "ttl.options.min",
            ),
            (
                "ttl.earnings_max",
                t.earnings_max,
                t.earnings_min,
                "ttl.earnings_min",
            ),
        ] {
            if value < min {
                return Err((
                    key.into(),
                    format!("{value} is shorter than {min_key} ({min})"),
                ));
            }
        }
        if !(0.0..1.0).contains(&t.jitter) {
            return Err((
                "ttl.jitter".into(),
                format!("{} is not a fraction in [0, 1)", t.jitter),
            ));
        }
        Ok(())
    }
}

impl Settings {
    fn validate_providers(&self) -> Result<(), KeyProblem> {
        let p = &self.provider;
        for (kind, chain) in [
            ("stock", &p.stock),
            ("options", &p.options),
            ("earnings", &p.earnings),
        ] {
            let key = format!("provider.{kind}");
            if chain.is_empty() {
                return Err((key, "name at least one provider".into()));
            }
            let mut seen = std::collections::BTreeSet::new();
            for name in chain {
                if !seen.insert(name) {
                    return Err((key, format!("{} is listed twice", name.as_str())));
                }
                if kind == "earnings"
                    && matches!(name, ProviderName::Polygon | ProviderName::Tradier)
                {
                    return Err((
                        key,
                        format!(
                            "{} has no earnings data; use yahoo or replay",
                            name.as_str()
                        ),
                    ));
                }
            }
        }
        let uses = |name: ProviderName| {
            [&p.stock, &p.options, &p.earnings]
                .iter()
                .any(|c| c.contains(&name))
        };
        if uses(ProviderName::Polygon) && p.polygon.api_key.is_none() {
            return Err((
                "provider.polygon.api_key".into(),
                "polygon is in a provider chain but has no api_key or api_key_file".into(),
            ));
        }
        if uses(ProviderName::Tradier) && p.tradier.token.is_none() {
            return Err((
                "provider.tradier.token".into(),
                "tradier is in a provider chain but has no token or token_file".into(),
            ));
        }
        positive(&p.timeout, "provider.timeout")?;
        positive(&p.connect_timeout, "provider.connect_timeout")?;
        positive(&p.breaker_cooldown, "provider.breaker_cooldown")?;
        if p.max_body.0 < 1024 {
            return Err((
                "provider.max_body".into(),
                format!("{} is below the 1KiB minimum", p.max_body),
            ));
        }
        if p.breaker_failures == 0 {
            return Err((
                "provider.breaker_failures".into(),
                "must be at least 1".into(),
            ));
        }
        if p.user_agent.trim().is_empty()
            || reqwest::header::HeaderValue::from_str(&p.user_agent).is_err()
        {
            return Err((
                "provider.user_agent".into(),
                format!("{:?} is not a valid header value", p.user_agent),
            ));
        }
        for (name, limits) in [
            ("yahoo", p.yahoo.limits()),
            ("polygon", p.polygon.limits()),
            ("tradier", p.tradier.limits()),
        ] {
            if limits.max_concurrency == 0 {
                return Err((
                    format!("provider.{name}.max_concurrency"),
                    "must be at least 1".into(),
                ));
            }
            let rps = limits.requests_per_second;
            if !rps.is_finite() || rps < 0.0 {
                return Err((
                    format!("provider.{name}.requests_per_second"),
                    format!("{rps} is not a rate (0 = unlimited)"),
                ));
            }
        }
        for (key, batch) in [
            ("provider.yahoo.quote_batch", p.yahoo.quote_batch),
            ("provider.tradier.quote_batch", p.tradier.quote_batch),
        ] {
            if !(1..=MAX_QUOTE_BATCH).contains(&batch) {
                return Err((
                    key.into(),
                    format!("{batch} is outside 1..={MAX_QUOTE_BATCH}"),
                ));
            }
        }
        if let Some(dir) = &p.replay.dir
            && !dir.is_dir()
        {
            return Err((
                "provider.replay.dir".into(),
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(())
    }
}

impl Settings {
    fn validate_integrity(&self) -> Result<(), KeyProblem> {
        let i = &self.integrity;
        if !(1..=MAX_BATCH).contains(&i.scan_count) {
            return Err((
                "integrity.scan_count".into(),
                format!("{} is outside 1..={MAX_BATCH}", i.scan_count),
            ));
        }
        if !(0.0..=1.0).contains(&self.status.min_coverage) {
            return Err((
                "status.min_coverage".into(),
                format!("{} is not a fraction in [0, 1]", self.status.min_coverage),
            ));
        }
        if !(0.0..=1.0).contains(&i.prune_max_fraction) {
            return Err((
                "integrity.prune_max_fraction".into(),
                format!("{} is not a fraction in [0, 1]", i.prune_max_fraction),
            ));
        }
        for (n, rule) in i.rules.iter().enumerate() {
            let key = |field: &str| format!("integrity.rules[{n}].{field}");
            if rule.index.is_empty() {
                return Err((key("index"), "must not be empty".into()));
            }
            if rule.member_key.matches(MEMBER_PLACEHOLDER).count() != 1 {
                return Err((
                    key("member_key"),
                    format!(
                        "{:?} must contain {MEMBER_PLACEHOLDER} exactly once",
                        rule.member_key
                    ),
                ));
            }
            match (&rule.object_pattern, rule.reindex) {
                (None, true) => {
                    return Err((
                        key("object_pattern"),
                        "reindex = true needs an object_pattern such as \"finance:position:*\""
                            .into(),
                    ));
                }
                (Some(_), false) => {
                    return Err((
                        key("object_pattern"),
                        "only used with reindex = true".into(),
                    ));
                }
                _ => {}
            }
            match &rule.object_type {
                Some(_) if !rule.reindex => {
                    return Err((key("object_type"), "only used with reindex = true".into()));
                }
                Some(t) if !OBJECT_TYPES.contains(&t.as_str()) => {
                    return Err((
                        key("object_type"),
                        format!("{t:?} is not one of {}", OBJECT_TYPES.join(", ")),
                    ));
                }
                _ => {}
            }
            if rule.reindex && rule.is_pattern() {
                return Err((
                    key("reindex"),
                    format!(
                        "reindex needs a single index, not the pattern {:?}",
                        rule.index
                    ),
                ));
            }
        }
        Ok(())
    }
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

fn positive(d: &HumanDuration, key: &str) -> Result<(), KeyProblem> {
    if d.get().is_zero() {
        return Err((key.into(), "must be greater than zero".into()));
    }
    Ok(())
}

/// Fills `value` from `file` when the `<key>_file` form is used; both at once is a mistake, not a
/// silent precedence rule. A relative path names a systemd credential when
/// `$CREDENTIALS_DIRECTORY` is set.
fn resolve_secret(
    value: &mut Option<Secret>,
    file: &Option<PathBuf>,
    key: &str,
    credentials: Option<&Path>,
) -> Result<(), KeyProblem> {
    let Some(path) = file else { return Ok(()) };
    let path = match credentials {
        Some(dir) if path.is_relative() => &dir.join(path),
        _ => path,
    };
    let file_key = format!("{key}_file");
    if value.is_some() {
        return Err((
            file_key,
            format!("both {key} and {key}_file are set; keep one"),
        ));
    }
    *value = Some(read_secret_file(path).map_err(|m| (file_key, m))?);
    Ok(())
}

/// Reads a secret from a file such as a systemd credential or a Kubernetes Secret mount.
/// One trailing newline (what `echo` and most editors add) is not part of the secret.
fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(value))
}

/// A secret string (password, API key): `Debug` and `Serialize` show `***`, never the value.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: &str) -> Self {
        Secret(SecretString::from(value))
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        if value.is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(Secret::new(&value))
    }
}

/// A Redis URL (`redis://` or `rediss://`) whose password is never displayed.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(url::Url);

impl RedisUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw)
            .map_err(|e| format!("invalid Redis URL {:?}: {e}", redact_url_text(raw)))?;
        let shown = RedisUrl(url);
        match shown.0.scheme() {
            "redis" | "rediss" => {}
            other => {
                return Err(format!(
                    "{shown}: scheme must be redis:// or rediss://, not {other}://"
                ));
            }
        }
        if shown.0.host_str().is_none_or(str::is_empty) {
            return Err(format!("{shown}: no host"));
        }
        let db = shown.0.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(format!(
                "{shown}: the path must be a database number, not {db:?}"
            ));
        }
        Ok(shown)
    }

    /// The URL with its password, for the Redis client only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_tls(&self) -> bool {
        self.0.scheme() == "rediss"
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!(
            "{}:{}",
            self.0.host_str().unwrap_or_default(),
            self.0.port().unwrap_or(6379)
        )
    }

    /// The ACL user in the URL, if any.
    pub fn username(&self) -> Option<&str> {
        Some(self.0.username()).filter(|u| !u.is_empty())
    }
}

/// Masks `user:password@` in a string that did not even parse as a URL.
fn redact_url_text(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***@{}", &raw[..scheme_end + 3], &raw[at + 1..])
        }
        _ => raw.to_owned(),
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            // Setting a password on a URL that already has one cannot fail.
            let _ = shown.set_password(Some("***"));
        }
        f.write_str(shown.as_str())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        RedisUrl::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A duration written as a human string (`"500ms"`, `"10m"`, `"60d"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub const fn new(d: Duration) -> Self {
        HumanDuration(d)
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    /// The shortest exact form in one unit, so the printed config reads like the file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() != 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let s = d.as_secs();
        match s {
            0 => f.write_str("0s"),
            _ if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            _ if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            _ if s % 60 == 0 => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        humantime::parse_duration(raw.trim())
            .map(HumanDuration)
            .map_err(|e| format!("invalid duration {raw:?} ({e}); write e.g. \"500ms\", \"10s\", \"10m\", \"1h\", \"60d\""))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An `http://` or `https://` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub url::Url);

impl Serialize for HttpUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        let url = url::Url::parse(&raw)
            .map_err(|e| serde::de::Error::custom(format!("invalid URL {raw:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(serde::de::Error::custom(format!(
                "{raw:?} is not an http:// or https:// URL"
            )));
        }
        if url.password().is_some() || url.query().is_some() {
            // Not echoed: the query or password is likely a secret.
            return Err(serde::de::Error::custom(
                "a base URL takes no query or password; put credentials in the api_key/token keys, not in the URL",
            ));
        }
        Ok(HttpUrl(url))
    }
}

/// A size in bytes, with a unit (`"8MiB"`, `"512KiB"`, `"1GiB"`) or without (`4096`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => {
                return Err(format!(
                    "invalid size {raw:?}; write e.g. \"512KiB\", \"8MiB\", \"1GiB\""
                ));
            }
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .map(ByteSize)
            .ok_or_else(|| {
                format!("invalid size {raw:?}; write e.g. \"512KiB\", \"8MiB\", \"1GiB\"")
            })
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    /// A string with a unit, or a plain number of bytes (`4096`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A fraction above 0 and at most 10 (`0.2` = 20%), given as a number or, from an environment
/// variable, as text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction(pub f64);

impl Serialize for Fraction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let value = match Raw::deserialize(d)? {
            Raw::Number(n) => n,
            Raw::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number")))?,
        };
        if value > 0.0 && value <= 10.0 {
            Ok(Fraction(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "{value} is not a fraction above 0 and at most 10 (0.2 = 20%)"
            )))
        }
    }
}

/// An IANA time zone name such as `America/New_York`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub chrono_tz::Tz);

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map(Zone).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown time zone {raw:?}; use an IANA name such as \"America/New_York\""
            ))
        })
    }
}

/// A calendar date written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsoDate(pub chrono::NaiveDate);

impl Serialize for IsoDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for IsoDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        chrono::NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
            .map(IsoDate)
            .map_err(|e| {
                serde::de::Error::custom(format!("invalid date {raw:?} ({e}); write YYYY-MM-DD"))
            })
    }
}

/// The first fire time of `cron` strictly after `after`, computed in `tz`.
pub fn next_fire(
    cron: &croner::Cron,
    tz: chrono_tz::Tz,
    after: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// How far ahead [`Schedule::longest_gap_over`] looks: over a year, so a yearly pattern shows.
const GAP_SCAN_DAYS: i64 = 400;
/// Its probes at most, so a short limit cannot make start-up slow.
const GAP_SCAN_PROBES: i32 = 2_000;

/// A 6-field cron expression with seconds (`sec min hour dom month dow`), checked when loaded.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build()
            .parse(text)
            .map_err(|e| format!("invalid cron expression {text:?} (6 fields with seconds, e.g. \"0 */5 * * * *\"): {e}"))?;
        // A date that never comes (30 February) parses; a job on it would never run, and its
        // loop would end, so the daemon's heartbeats would stop and it would be restarted in a
        // loop. Without a year field, an expression that fires once fires again every 4 years.
        if next_fire(&cron, chrono_tz::UTC, chrono::Utc::now()).is_none() {
            return Err(format!(
                "the cron expression {text:?} never fires (a date that does not exist?)"
            ));
        }
        Ok(Schedule {
            text: text.to_owned(),
            cron,
        })
    }

    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }

    /// The longest wait for a run from `from` on (to the first fire time, or between two), if
    /// one is longer than `limit`. Probes the next 400 days at half the limit apart, so every
    /// such wait holds a probe, and measures it from the fire times around that probe: a few
    /// dozen steps, where walking every fire time of an every-second schedule would take long.
    pub fn longest_gap_over(
        &self,
        tz: chrono_tz::Tz,
        from: chrono::DateTime<chrono::Utc>,
        limit: chrono::Duration,
    ) -> Option<chrono::Duration> {
        let step = (limit / 2).max(chrono::Duration::days(GAP_SCAN_DAYS) / GAP_SCAN_PROBES);
        let end = from + chrono::Duration::days(GAP_SCAN_DAYS);
        let mut longest = None;
        let mut probe = from;
        while probe <= end {
            let local = probe.with_timezone(&tz);
            let next = self.cron.find_next_occurrence(&local, false).ok()?;
            let previous = self
                .cron
                .find_previous_occurrence(&local, true)
                .map_or(from, |p| p.with_timezone(&chrono::Utc).max(from));
            let gap = next.with_timezone(&chrono::Utc) - previous;
            if gap > limit && longest.is_none_or(|l| gap > l) {
                longest = Some(gap);
            }
            probe += step;
        }
        longest
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Schedule::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_their_shortest_exact_unit_and_parse_back() {
        for (text, secs_ms, shown) in [
            ("500ms", (0, 500), "500ms"),
            ("90s", (90, 0), "90s"),
            ("10m", (600, 0), "10m"),
            ("1h", (3600, 0), "1h"),
            ("60d", (60 * 86_400, 0), "60d"),
            ("1h 30m", (5400, 0), "90m"),
            ("0s", (0, 0), "0s"),
        ] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(
                d.get(),
                Duration::from_secs(secs_ms.0) + Duration::from_millis(secs_ms.1)
            );
            assert_eq!(d.to_string(), shown);
            assert_eq!(shown.parse::<HumanDuration>().unwrap(), d);
        }
        assert!(
            "10".parse::<HumanDuration>().is_err(),
            "a bare number has no unit"
        );
    }

    #[test]
    fn redis_urls_hide_their_password_everywhere() {
        let url = RedisUrl::parse("rediss://warmer:pw@cache.internal:6380/2").unwrap();
        assert_eq!(url.to_string(), "rediss://warmer:***@cache.internal:6380/2");
        assert_eq!(
            format!("{url:?}"),
            "RedisUrl(rediss://warmer:***@cache.internal:6380/2)"
        );
        assert_eq!(url.address(), "cache.internal:6380");
        assert!(url.is_tls());
        assert_eq!(RedisUrl::parse("redis://h").unwrap().address(), "h:6379");
        assert_eq!(redact_url_text("redis://u:p@[x"), "redis://***@[x");
        assert_eq!(redact_url_text("no-at-sign"), "no-at-sign");
    }

    #[test]
    fn env_values_take_the_type_of_the_key_they_replace() {
        use toml::Value;
        let int = Value::Integer(1);
        assert_eq!(coerce_env(" 42 ", Some(&int)), Ok(Value::Integer(42)));
        assert!(coerce_env("4x", Some(&int)).is_err());
        assert_eq!(
            coerce_env("0.5", Some(&Value::Float(1.0))),
            Ok(Value::Float(0.5))
        );
        assert_eq!(
            coerce_env("123456", None),
            Ok(Value::String("123456".into()))
        );
        let s = Value::String(String::new());
        assert_eq!(
            coerce_env("true", Some(&s)),
            Ok(Value::String("true".into()))
        );
    }
}
