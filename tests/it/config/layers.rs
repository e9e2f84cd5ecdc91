//! Loading in layers (defaults, file, environment) and mistakes named with their key path and
//! origin.

use super::*;

#[test]
fn defaults_are_the_documented_file() {
    let s = Settings::defaults().unwrap();
    assert_eq!(s.redis.url.expose(), "redis://127.0.0.1:6379/0");
    assert_eq!(s.redis.connect_timeout.get(), Duration::from_secs(5));
    assert_eq!(s.redis.response_timeout.get(), Duration::from_secs(10));
    assert_eq!(s.log.format, LogFormat::Auto);
    assert_eq!(
        (
            LogFormat::Auto.resolved(true),
            LogFormat::Auto.resolved(false)
        ),
        (LogFormat::Pretty, LogFormat::Json),
        "auto: pretty for a person at a terminal, JSON for a machine"
    );
    assert_eq!(LogFormat::Json.resolved(true), LogFormat::Json);
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
