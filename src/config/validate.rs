//! Validation of the loaded settings: secrets resolved from their files, then every value
//! checked, each problem naming its key.

use std::path::Path;

use crate::calendar;

use super::secrets::{RedisUrl, resolve_secret};
use super::sections::{
    MAX_BATCH, MAX_EXTRA_HOLIDAYS, MAX_POLL_INTERVAL, MIN_CLAIM_AFTER, MIN_LOCK_TTL, MIN_VALUE_CAP,
    Settings, WRITE_BATCH_BYTES,
};
use super::values::{ByteSize, HumanDuration, KeyProblem};

impl Settings {
    pub(super) fn resolve_secrets(&mut self, credentials: Option<&Path>) -> Result<(), KeyProblem> {
        let p = &mut self.provider;
        resolve_secret(
            &mut self.redis.password,
            &self.redis.password_file,
            "redis.password",
            credentials,
        )?;
        let sentinel = &mut self.redis.sentinel;
        resolve_secret(
            &mut sentinel.sentinel_password,
            &sentinel.sentinel_password_file,
            "redis.sentinel.sentinel_password",
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
        )?;
        resolve_secret(
            &mut p.finnhub.api_key,
            &p.finnhub.api_key_file,
            "provider.finnhub.api_key",
            credentials,
        )
    }

    /// Exactly one way to reach Redis: `redis.url` (the default when nothing else is set),
    /// `redis.cluster_nodes` or `redis.sentinel.nodes`. `url_set` is whether a file or the
    /// environment set `redis.url`, since the compiled-in default always holds one.
    pub(super) fn validate_redis_target(&self, url_set: bool) -> Result<(), KeyProblem> {
        let r = &self.redis;
        let chosen: Vec<&str> = [
            (url_set, "redis.url"),
            (!r.cluster_nodes.is_empty(), "redis.cluster_nodes"),
            (r.sentinel.in_use(), "redis.sentinel.nodes"),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
        .collect();
        match chosen.as_slice() {
            [first, second, ..] => Err((
                (*second).into(),
                format!(
                    "{first} is set too; set exactly one of redis.url, redis.cluster_nodes, redis.sentinel.nodes"
                ),
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn validate(&self) -> Result<(), KeyProblem> {
        let r = &self.redis;
        positive(&r.connect_timeout, "redis.connect_timeout")?;
        positive(&r.response_timeout, "redis.response_timeout")?;
        if let Some(ca) = &r.ca_file {
            let tls = if r.sentinel.in_use() {
                r.sentinel.tls || r.sentinel.nodes.iter().any(RedisUrl::is_tls)
            } else {
                match r.cluster_nodes.first() {
                    Some(_) => r.cluster_nodes.iter().all(RedisUrl::is_tls),
                    None => r.url.is_tls(),
                }
            };
            if !tls {
                return Err((
                    "redis.ca_file".into(),
                    format!(
                        "set, but redis.url {} (or redis.cluster_nodes, redis.sentinel) does not use TLS",
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
        if r.sentinel.in_use() && r.sentinel.master_name.trim().is_empty() {
            return Err((
                "redis.sentinel.master_name".into(),
                "empty; name the primary the sentinels monitor (`sentinel monitor <name> ...`)"
                    .into(),
            ));
        }
        if r.sentinel
            .nodes
            .windows(2)
            .any(|w| w[0].is_tls() != w[1].is_tls())
        {
            return Err((
                "redis.sentinel.nodes".into(),
                "mixes redis:// and rediss:// sentinels".into(),
            ));
        }
        for (ticker, market) in &self.markets.tickers {
            known_market(market, &format!("markets.tickers.{ticker}"))?;
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
        self.validate_requests()?;
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
                    HumanDuration::new(MIN_LOCK_TTL)
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
        if !WRITE_BATCH_BYTES.contains(&sch.write_batch_bytes.0) {
            return Err((
                "scheduler.write_batch_bytes".into(),
                format!(
                    "{} is outside {}..={}",
                    sch.write_batch_bytes,
                    ByteSize(*WRITE_BATCH_BYTES.start()),
                    ByteSize(*WRITE_BATCH_BYTES.end())
                ),
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// A warming job's values live until its next run can have rewritten them (see
    /// `jobs::warm`), but never longer than `ttl.earnings_max`: a schedule whose runs can be
    /// further apart than that, with the timeout, would let values lapse between runs.
    pub(super) fn validate_schedule_gaps(&self) -> Result<(), KeyProblem> {
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

    pub(super) fn validate_ttl(&self) -> Result<(), KeyProblem> {
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
            ("ttl.options.none", Some(o.none)),
            ("ttl.extended", t.extended),
        ];
        let per_market = t.markets.iter().flat_map(|(market, m)| {
            [("open", m.open), ("closed", m.closed), ("min", m.min)]
                .map(|(name, value)| (format!("ttl.markets.{market}.{name}"), value))
        });
        let named = named
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .chain(per_market);
        for (key, value) in named {
            if let Some(d) = value {
                let d = d.get();
                if d.subsec_nanos() != 0 || d.is_zero() {
                    return Err((
                        key,
                        format!(
                            "{} must be a whole number of seconds, at least 1s",
                            HumanDuration::new(d)
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
        for (market, m) in &t.markets {
            known_market(market, &format!("ttl.markets.{market}"))?;
            let min = m.min.unwrap_or(t.min);
            for (name, value) in [("open", m.open), ("closed", m.closed)] {
                if let Some(value) = value.filter(|v| *v < min) {
                    return Err((
                        format!("ttl.markets.{market}.{name}"),
                        format!("{value} is shorter than its min ({min})"),
                    ));
                }
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

/// A market name some calendar has (`XNYS`, `XLON`, `24/7`, `FX`, ...).
fn known_market(name: &str, key: &str) -> Result<(), KeyProblem> {
    // Environment variables arrive lower-cased: market names are matched in any case.
    if calendar::names().any(|known| known.eq_ignore_ascii_case(name)) {
        return Ok(());
    }
    let known: Vec<&str> = calendar::names().collect();
    Err((
        key.into(),
        format!("unknown market {name:?}; known: {}", known.join(", ")),
    ))
}

impl Settings {
    fn validate_requests(&self) -> Result<(), KeyProblem> {
        let r = &self.requests;
        if r.group.trim().is_empty() {
            return Err(("requests.group".into(), "must not be empty".into()));
        }
        positive(&r.poll_interval, "requests.poll_interval")?;
        if r.poll_interval.get() > MAX_POLL_INTERVAL {
            return Err((
                "requests.poll_interval".into(),
                format!(
                    "{} is more than {}: a request would wait that long to be seen",
                    r.poll_interval,
                    HumanDuration::new(MAX_POLL_INTERVAL)
                ),
            ));
        }
        if r.claim_after.get() < MIN_CLAIM_AFTER {
            return Err((
                "requests.claim_after".into(),
                format!(
                    "{} is less than {}: entries still being warmed would be claimed again",
                    r.claim_after,
                    HumanDuration::new(MIN_CLAIM_AFTER)
                ),
            ));
        }
        if r.max_len == 0 {
            return Err(("requests.max_len".into(), "must be at least 1".into()));
        }
        Ok(())
    }
}

pub(super) fn positive(d: &HumanDuration, key: &str) -> Result<(), KeyProblem> {
    if d.get().is_zero() {
        return Err((key.into(), "must be greater than zero".into()));
    }
    Ok(())
}
