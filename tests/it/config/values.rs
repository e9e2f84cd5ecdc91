//! The values of each section, checked with their path.

use super::*;

#[test]
fn market_and_ttl_values_are_checked_with_their_path() {
    let e = load_err(None, &[("FCW_MARKET__TIMEZONE", "America/Gotham")]);
    assert!(
        e.starts_with("market.timezone: unknown time zone \"America/Gotham\""),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "m.toml",
        "[market]\nextra_holidays = [\"2027-01-08\", \"2027-02-30\"]\n",
    );
    let e = load_err(Some(&file), &[]);
    assert!(
        e.starts_with("market.extra_holidays[1]: invalid date \"2027-02-30\""),
        "{e}"
    );
    let e = load_err(None, &[("FCW_TTL__MIN", "2h")]);
    assert!(
        e.starts_with("ttl.open: 10m is shorter than ttl.min (2h)"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_TTL__OPTIONS__MIN", "20m")]);
    assert!(
        e.starts_with("ttl.options.open: 10m is shorter than ttl.options.min (20m)"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_TTL__OPEN", "1500ms")]);
    assert!(
        e.starts_with("ttl.open: 1500ms must be a whole number of seconds"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_TTL__JITTER", "1.5")]);
    assert!(
        e.starts_with("ttl.jitter: 1.5 is not a fraction in [0, 1)"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_TTL__EARNINGS_MAX", "30m")]);
    assert!(
        e.starts_with("ttl.earnings_max: 30m is shorter than ttl.earnings_min (1h)"),
        "{e}"
    );

    let s = config::load_from(
        None,
        env(&[
            ("FCW_MARKET__EXTRA_HOLIDAYS", "2027-01-08,2027-01-11"),
            ("FCW_TTL__OPTIONS__CLOSED", "2h"),
        ]),
    )
    .unwrap();
    assert_eq!(s.market.extra_holidays.len(), 2);
    assert_eq!(
        s.ttl.options.closed.unwrap().get(),
        Duration::from_secs(7200)
    );
}

#[test]
fn provider_chains_are_checked_against_what_each_provider_can_do() {
    let e = load_err(None, &[("FCW_PROVIDER__STOCK", "polygon,yahoo")]);
    assert!(
        e.starts_with(
            "provider.polygon.api_key: polygon is in a provider chain but has no api_key"
        ),
        "{e}"
    );
    let e = load_err(
        None,
        &[
            ("FCW_PROVIDER__EARNINGS", "tradier"),
            ("FCW_PROVIDER__TRADIER__TOKEN", "x"),
        ],
    );
    assert!(
        e.starts_with(
            "provider.earnings: tradier has no earnings data; use finnhub, polygon, yahoo or replay"
        ),
        "{e}"
    );
    let e = load_err(None, &[("FCW_PROVIDER__STOCK", "finnhub")]);
    assert!(
        e.starts_with("provider.stock: finnhub serves earnings only here"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_PROVIDER__EARNINGS", "finnhub,yahoo")]);
    assert!(
        e.starts_with(
            "provider.finnhub.api_key: finnhub is in a provider chain but has no api_key"
        ),
        "{e}"
    );
    let e = load_err(None, &[("FCW_PROVIDER__OPTIONS", "yahoo,bloomberg")]);
    assert!(
        e.starts_with("provider.options[1]: unknown variant `bloomberg`"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_PROVIDER__STOCK", "yahoo,yahoo")]);
    assert!(
        e.starts_with("provider.stock: yahoo is listed twice"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_PROVIDER__STOCK", "")]);
    assert!(
        e.starts_with("provider.stock: name at least one provider"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_PROVIDER__MAX_BODY", "8 parsecs")]);
    assert!(
        e.starts_with("provider.max_body: invalid size \"8 parsecs\""),
        "{e}"
    );
    let e = load_err(
        None,
        &[("FCW_PROVIDER__YAHOO__BASE_URL", "ftp://example.com")],
    );
    assert!(
        e.starts_with(
            "provider.yahoo.base_url: \"ftp://example.com\" is not an http:// or https:// URL"
        ),
        "{e}"
    );
    let e = load_err(
        None,
        &[(
            "FCW_PROVIDER__POLYGON__BASE_URL",
            "https://api.massive.com/?apiKey=SECRET",
        )],
    );
    assert!(e.contains("not in the URL") && !e.contains("SECRET"), "{e}");
    let e = load_err(None, &[("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "-1")]);
    assert!(
        e.starts_with("provider.yahoo.requests_per_second: -1 is not a rate"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_PROVIDER__YAHOO__QUOTE_BATCH", "0")]);
    assert!(
        e.starts_with("provider.yahoo.quote_batch: 0 is outside 1..=200"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x.toml", "[jobs.stock]\nexpirations = 3\n");
    let e = load_err(Some(&file), &[]);
    assert!(
        e.starts_with("jobs.stock.expirations: only jobs.options has expirations"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_PROVIDER__REPLAY__DIR", "/nonexistent")]);
    assert!(
        e.starts_with("provider.replay.dir: /nonexistent is not a directory"),
        "{e}"
    );
}

#[test]
fn server_and_scheduler_values_are_checked() {
    let e = load_err(None, &[("FCW_SERVER__LISTEN", "localhost")]);
    assert!(
        e.starts_with("server.listen: \"localhost\" is not host:port"),
        "{e}"
    );
    assert!(
        config::load_from(None, env(&[("FCW_SERVER__LISTEN", "")]))
            .unwrap()
            .server
            .address()
            .is_none()
    );
    let e = load_err(None, &[("FCW_SCHEDULER__LOCK_TTL", "1s")]);
    assert!(
        e.starts_with("scheduler.lock_ttl: 1s is below the 3s minimum"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_JOBS__STOCK__MAX_FAILURE_RATIO", "1.5")]);
    assert!(
        e.starts_with("jobs.stock.max_failure_ratio: 1.5 is not a fraction"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_SCHEDULER__BATCH_SIZE", "0")]);
    assert!(
        e.starts_with("scheduler.batch_size: 0 is outside 1..=10000"),
        "{e}"
    );
}

#[test]
fn write_batch_bytes_is_a_size_within_its_range() {
    use finance_cache_warmer::config::ByteSize;
    let defaults = config::load_from(None, env(&[])).unwrap();
    assert_eq!(defaults.scheduler.write_batch_bytes, ByteSize(1 << 20));
    let set =
        config::load_from(None, env(&[("FCW_SCHEDULER__WRITE_BATCH_BYTES", "4MiB")])).unwrap();
    assert_eq!(set.scheduler.write_batch_bytes, ByteSize(4 << 20));
    let e = load_err(None, &[("FCW_SCHEDULER__WRITE_BATCH_BYTES", "1KiB")]);
    assert!(
        e.starts_with("scheduler.write_batch_bytes: 1KiB is outside 4KiB..=256MiB"),
        "{e}"
    );
}

#[test]
fn cache_and_strike_window_keys_are_typed_and_checked() {
    use finance_cache_warmer::config::{ByteSize, Compression};
    let defaults = config::load_from(None, env(&[])).unwrap();
    assert_eq!(defaults.cache.compress, Compression::None);
    assert_eq!(defaults.cache.compress_min_bytes, ByteSize(4096));
    assert_eq!(defaults.cache.max_value_bytes, ByteSize(1 << 20));
    assert_eq!(defaults.jobs.options.strike_window, None);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        "[cache]\ncompress = \"gzip\"\ncompress_min_bytes = \"2KiB\"\n[jobs.options]\nstrike_window = 0.25\n",
    );
    let s = config::load_from(
        Some(&file),
        env(&[("FCW_CACHE__MAX_VALUE_BYTES", "512KiB")]),
    )
    .unwrap();
    assert_eq!(
        (
            s.cache.compress,
            s.cache.compress_min_bytes,
            s.cache.max_value_bytes
        ),
        (Compression::Gzip, ByteSize(2048), ByteSize(512 << 10))
    );
    assert_eq!(s.jobs.options.strike_window.map(|w| w.0), Some(0.25));
    let e = load_err(None, &[("FCW_CACHE__COMPRESS", "zstd")]);
    assert!(
        e.starts_with("cache.compress: unknown variant `zstd`"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_CACHE__MAX_VALUE_BYTES", "100B")]);
    assert!(
        e.starts_with("cache.max_value_bytes: 100B is below 1KiB"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_JOBS__OPTIONS__STRIKE_WINDOW", "0")]);
    assert!(
        e.starts_with("jobs.options.strike_window: 0 is not a fraction"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_JOBS__STOCK__STRIKE_WINDOW", "0.2")]);
    assert!(
        e.starts_with("jobs.stock.strike_window: only jobs.options"),
        "{e}"
    );
}
