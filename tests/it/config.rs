//! Configuration: layering, rejection of mistakes with the key path, and secret redaction.

use crate::support;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use finance_cache_warmer::config::{self, ConfigError, LogFormat, Settings};
use support::{fcw, run};

fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    vars.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_err(file: Option<&Path>, vars: &[(&str, &str)]) -> String {
    match config::load_from(file, env(vars)) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_are_the_documented_file() {
    let s = Settings::defaults().unwrap();
    assert_eq!(s.redis.url.expose(), "redis://127.0.0.1:6379/0");
    assert_eq!(s.redis.connect_timeout.get(), Duration::from_secs(5));
    assert_eq!(s.redis.response_timeout.get(), Duration::from_secs(10));
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.jobs.stock.schedule.as_str(), "0 */5 * * * *");
    // The printed defaults parse back as a config file with the same values.
    let dir = tempfile::tempdir().unwrap();
    let printed = write(dir.path(), "printed.toml", &s.to_redacted_toml());
    let again = config::load_from(Some(&printed), env(&[])).unwrap();
    assert_eq!(again.to_redacted_toml(), s.to_redacted_toml());
}

#[test]
fn file_overrides_defaults_and_env_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        r#"
[redis]
url = "redis://file-host:6379/1"
response_timeout = "30s"
[jobs.stock]
timeout = "1m"
enabled = false
"#,
    );
    let s = config::load_from(
        Some(&file),
        env(&[
            ("FCW_REDIS__URL", "redis://env-host:7000/2"),
            ("FCW_JOBS__STOCK__ENABLED", "true"),
            ("FCW_LOG__FORMAT", "pretty"),
            ("UNRELATED", "ignored"),
            ("FCW_CONFIG", "/not/a/key"),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.redis.url.expose(),
        "redis://env-host:7000/2",
        "env beats file"
    );
    assert_eq!(
        s.redis.response_timeout.get(),
        Duration::from_secs(30),
        "file beats default"
    );
    assert_eq!(
        s.redis.connect_timeout.get(),
        Duration::from_secs(5),
        "default kept"
    );
    assert_eq!(s.jobs.stock.timeout.get(), Duration::from_secs(60));
    assert!(s.jobs.stock.enabled, "a boolean from the environment");
    assert_eq!(s.log.format, LogFormat::Pretty);
    assert!(s.jobs.options.enabled, "sibling tables keep their defaults");
}

#[test]
fn env_lists_accept_commas_or_toml_arrays_and_numbers_keep_their_type() {
    // cluster_nodes is an array of URLs: both spellings parse.
    for value in [
        "redis://a:1,redis://b:2",
        r#"["redis://a:1", "redis://b:2"]"#,
    ] {
        let s = config::load_from(None, env(&[("FCW_REDIS__CLUSTER_NODES", value)])).unwrap();
        let nodes: Vec<String> = s.redis.cluster_nodes.iter().map(|n| n.address()).collect();
        assert_eq!(nodes, ["a:1", "b:2"], "{value}");
    }
    let e = load_err(
        None,
        &[("FCW_REDIS__CLUSTER_NODES", "redis://a:1,http://b:2")],
    );
    assert!(
        e.starts_with("redis.cluster_nodes[1]: http://b:2/: scheme must be redis://"),
        "{e}"
    );
    let e = load_err(
        None,
        &[("FCW_REDIS__CLUSTER_NODES", "redis://a:1,rediss://b:2")],
    );
    assert!(
        e.starts_with("redis.cluster_nodes: mixes redis:// and rediss:// nodes"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_JOBS__STOCK__ENABLED", "yes")]);
    assert_eq!(
        e,
        "jobs.stock.enabled: expected true or false, got \"yes\" (from environment variable FCW_JOBS__STOCK__ENABLED)"
    );
}

#[test]
fn errors_in_arrays_and_missing_keys_name_their_source_too() {
    let dir = tempfile::tempdir().unwrap();
    for (text, starts) in [
        ("[provider]\nstock = [\"nope\"]\n", "provider.stock[0]: "),
        (
            "[market]\nextra_holidays = [\"2027-13-01\"]\n",
            "market.extra_holidays[0]: ",
        ),
        (
            "[[integrity.rules]]\nindex = \"finance:positions:index\"\n",
            "integrity.rules[0]: missing field `member_key`",
        ),
    ] {
        let file = write(dir.path(), "c.toml", text);
        let e = load_err(Some(&file), &[]);
        assert!(e.starts_with(starts), "{e}");
        assert!(e.ends_with(&format!("(in {})", file.display())), "{e}");
    }
    let e = load_err(None, &[("FCW_PROVIDER__STOCK", "nope")]);
    assert!(
        e.starts_with("provider.stock[0]: ")
            && e.ends_with("(from environment variable FCW_PROVIDER__STOCK)"),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_path_and_origin() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "typo.toml",
        "[jobs.stock]\nschedul = \"0 * * * * *\"\n",
    );
    let e = load_err(Some(&file), &[]);
    assert!(
        e.starts_with("jobs.stock.schedul: unknown field `schedul`"),
        "{e}"
    );
    assert!(e.ends_with(&format!("(in {})", file.display())), "{e}");

    let e = load_err(None, &[("FCW_REDIS__PASWORD", "x")]);
    assert!(
        e.starts_with("redis.pasword: unknown field `pasword`"),
        "{e}"
    );
    assert!(e.contains("FCW_REDIS__PASWORD"), "{e}");

    let e = load_err(None, &[("FCW_BOGUS", "1")]);
    assert!(e.starts_with("bogus: unknown field `bogus`"), "{e}");

    let e = load_err(None, &[("FCW_REDIS", "x")]);
    assert!(e.starts_with("redis: is a section"), "{e}");
}

#[test]
fn bad_durations_are_rejected_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "d.toml",
        "[redis]\nconnect_timeout = \"5 parsecs\"\n",
    );
    let e = load_err(Some(&file), &[]);
    assert!(
        e.starts_with("redis.connect_timeout: invalid duration \"5 parsecs\""),
        "{e}"
    );

    let e = load_err(None, &[("FCW_JOBS__EARNINGS__TIMEOUT", "0s")]);
    assert!(
        e.starts_with("jobs.earnings.timeout: must be greater than zero"),
        "{e}"
    );

    let file = write(dir.path(), "n.toml", "[redis]\nresponse_timeout = 10\n");
    let e = load_err(Some(&file), &[]);
    assert!(
        e.starts_with("redis.response_timeout: invalid type: integer `10`, expected a string"),
        "{e}"
    );
}

#[test]
fn a_schedule_that_never_fires_is_a_config_error() {
    let (code, out, err) = run(fcw()
        .arg("check-config")
        .env("FCW_JOBS__EARNINGS__SCHEDULE", "0 0 0 30 2 *"));
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.starts_with(
            "config error: jobs.earnings.schedule: the cron expression \"0 0 0 30 2 *\" never fires"
        ),
        "{err}"
    );
    // 29 February comes, every four years: fine for the integrity job, which writes no values.
    let (code, _, err) = run(fcw()
        .arg("check-config")
        .env("FCW_JOBS__INTEGRITY__SCHEDULE", "0 0 0 29 2 *"));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_warming_schedule_whose_runs_are_further_apart_than_any_value_may_live_is_a_config_error() {
    // Quarterly earnings runs: over 90 days apart, and values live 60 days at most.
    let quarterly = ("FCW_JOBS__EARNINGS__SCHEDULE", "0 0 8 1 */3 *");
    let (code, _, err) = run(fcw().arg("check-config").env(quarterly.0, quarterly.1));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("config error: jobs.earnings.schedule: up to 92d 1h pass between its runs")
            && err.contains("longer than ttl.earnings_max (60d)"),
        "{err}"
    );
    let (code, _, err) = run(fcw()
        .arg("check-config")
        .env(quarterly.0, quarterly.1)
        .env("FCW_TTL__EARNINGS_MAX", "100d"));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn bad_cron_expressions_are_rejected_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["*/5 * * * *", "0 61 * * * *", "every five minutes"] {
        let file = write(
            dir.path(),
            "c.toml",
            &format!("[jobs.options]\nschedule = {bad:?}\n"),
        );
        let e = load_err(Some(&file), &[]);
        assert!(
            e.starts_with(&format!(
                "jobs.options.schedule: invalid cron expression {bad:?}"
            )),
            "{e}"
        );
    }
}

#[test]
fn other_values_are_checked_too() {
    let e = load_err(None, &[("FCW_REDIS__URL", "http://x:1")]);
    assert!(
        e.starts_with("redis.url: http://x:1/: scheme must be redis:// or rediss://"),
        "{e}"
    );
    let e = load_err(None, &[("FCW_REDIS__URL", "redis://h:1/notanumber")]);
    assert!(e.contains("must be a database number"), "{e}");
    let e = load_err(None, &[("FCW_LOG__LEVEL", "info,=[")]);
    assert!(e.starts_with("log.level: invalid filter"), "{e}");
    let e = load_err(None, &[("FCW_LOG__FORMAT", "xml")]);
    assert!(e.starts_with("log.format: unknown variant `xml`"), "{e}");
    let e = load_err(None, &[("FCW_REDIS__CA_FILE", "/nonexistent/ca.pem")]);
    assert!(e.starts_with("redis.ca_file: set, but redis.url"), "{e}");
}

#[test]
fn a_missing_or_malformed_file_is_named() {
    let e = load_err(Some(Path::new("/nonexistent/fcw.toml")), &[]);
    assert!(
        e.starts_with("cannot read config file /nonexistent/fcw.toml"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "[redis\n");
    let e = load_err(Some(&file), &[]);
    assert!(e.starts_with(&file.display().to_string()), "{e}");
}

#[test]
fn secrets_from_file_env_and_url_never_show_in_debug_or_output() {
    let dir = tempfile::tempdir().unwrap();
    let pw_file = write(dir.path(), "redis-password", "s3cr3t-from-file\n");
    let s = config::load_from(
        None,
        env(&[
            ("FCW_REDIS__URL", "redis://warmer:s3cr3t-in-url@h:6379/0"),
            ("FCW_REDIS__PASSWORD_FILE", pw_file.to_str().unwrap()),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.redis.password.as_ref().unwrap().expose(),
        "s3cr3t-from-file",
        "newline stripped"
    );
    let debug = format!("{s:?} {:?}", s.redis);
    let printed = s.to_redacted_toml();
    for shown in [&debug, &printed] {
        assert!(!shown.contains("s3cr3t"), "secret leaked: {shown}");
    }
    assert!(
        printed.contains(r#"url = "redis://warmer:***@h:6379/0""#),
        "{printed}"
    );
    assert!(printed.contains(r#"password = "***""#), "{printed}");
    assert!(
        printed.contains(&format!(
            "password_file = {:?}",
            pw_file.display().to_string()
        )),
        "{printed}"
    );

    // Both ways of giving the password at once is a mistake, not a silent precedence rule.
    let e = config::load_from(
        None,
        env(&[
            ("FCW_REDIS__PASSWORD", "s3cr3t-env"),
            ("FCW_REDIS__PASSWORD_FILE", pw_file.to_str().unwrap()),
        ]),
    )
    .unwrap_err();
    assert!(
        matches!(e, ConfigError::Invalid { ref key, .. } if key == "redis.password_file"),
        "{e}"
    );
    assert!(!e.to_string().contains("s3cr3t"));

    // A URL that does not even parse is shown without its password.
    let e = load_err(None, &[("FCW_REDIS__URL", "redis://u:s3cr3t@[bad")]);
    assert!(
        !e.contains("s3cr3t") && e.contains("redis://***@[bad"),
        "{e}"
    );

    let empty = write(dir.path(), "empty", "\n");
    let e = load_err(
        None,
        &[("FCW_REDIS__PASSWORD_FILE", empty.to_str().unwrap())],
    );
    assert!(
        e.starts_with("redis.password_file: ") && e.contains("is empty"),
        "{e}"
    );
}

#[test]
fn check_config_prints_redacted_toml_and_exits_0() {
    let (code, out, err) = run(fcw()
        .args(["check-config"])
        .env("FCW_REDIS__PASSWORD", "hunter2-secret")
        .env(
            "FCW_REDIS__URL",
            "redis://warmer:hunter2-url@127.0.0.1:6379/3",
        ));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !out.contains("hunter2") && !err.contains("hunter2"),
        "{out}{err}"
    );
    assert!(out.contains(r#"password = "***""#), "{out}");
    let parsed: toml::Table = toml::from_str(&out).expect("output is TOML");
    assert_eq!(
        parsed["redis"]["url"].as_str(),
        Some("redis://warmer:***@127.0.0.1:6379/3")
    );
}

#[test]
fn config_errors_exit_2_with_one_message_and_write_nothing_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        "[jobs.stock]\nschedule = \"not cron\"\n",
    );
    let (code, out, err) = run(fcw().arg("--config").arg(&file).arg("check-config"));
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("config error: jobs.stock.schedule: invalid cron expression \"not cron\""),
        "{err}"
    );

    // The config path also comes from FCW_CONFIG.
    let (code, _, err) = run(fcw().env("FCW_CONFIG", &file).arg("check-config"));
    assert_eq!(code, Some(2));
    assert!(err.contains("jobs.stock.schedule"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = run(fcw().args(["once", "bogus-job"]));
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = run(fcw().arg("no-such-command"));
    assert_eq!(code, Some(2));
}

#[test]
fn the_shipped_production_example_is_valid_as_installed() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/production.toml"
    ));
    config::load_from(Some(path), env(&[])).unwrap();
}

#[test]
fn a_relative_secret_file_is_a_credential_under_systemd_and_beside_the_config_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "redis-password", "beside\n");
    let file = write(
        dir.path(),
        "c.toml",
        "[redis]\npassword_file = \"redis-password\"\n",
    );
    let s = config::load_from(Some(&file), env(&[])).unwrap();
    assert_eq!(s.redis.password.unwrap().expose(), "beside");
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    write(&credentials, "redis-password", "credential\n");
    let s = config::load_from(
        Some(&file),
        env(&[("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(s.redis.password.unwrap().expose(), "credential");
}

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
        e.starts_with("provider.earnings: tradier has no earnings data; use yahoo or replay"),
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
fn provider_keys_come_from_files_or_the_environment_and_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "polygon-key", "pk_FROM_FILE\n");
    let s = config::load_from(
        None,
        env(&[
            ("FCW_PROVIDER__STOCK", "polygon,tradier,yahoo"),
            ("FCW_PROVIDER__POLYGON__API_KEY_FILE", key.to_str().unwrap()),
            ("FCW_PROVIDER__TRADIER__TOKEN", "tk_FROM_ENV"),
            ("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0.5"),
            ("FCW_PROVIDER__MAX_BODY", "512KiB"),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.provider.polygon.api_key.as_ref().unwrap().expose(),
        "pk_FROM_FILE"
    );
    assert_eq!(
        s.provider.tradier.token.as_ref().unwrap().expose(),
        "tk_FROM_ENV"
    );
    assert_eq!(s.provider.yahoo.requests_per_second, 0.5);
    assert_eq!(s.provider.max_body.0, 512 * 1024);
    let shown = format!("{s:?}\n{}", s.to_redacted_toml());
    assert!(
        !shown.contains("FROM_FILE") && !shown.contains("FROM_ENV"),
        "{shown}"
    );
    assert!(
        shown.contains("api_key = \"***\"") && shown.contains("token = \"***\""),
        "{shown}"
    );
    assert!(shown.contains("max_body = \"512KiB\""), "{shown}");
}

#[test]
fn relative_secret_files_are_systemd_credentials() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "redis-password", "from-a-credential\n");
    let s = config::load_from(
        None,
        env(&[
            ("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap()),
            ("FCW_REDIS__PASSWORD_FILE", "redis-password"),
        ]),
    )
    .unwrap();
    assert_eq!(s.redis.password.unwrap().expose(), "from-a-credential");
    let e = load_err(None, &[("FCW_REDIS__PASSWORD_FILE", "redis-password")]);
    assert!(
        e.starts_with("redis.password_file: cannot read redis-password"),
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
