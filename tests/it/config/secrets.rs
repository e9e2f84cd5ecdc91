//! Secrets from files, the environment and URLs, hidden everywhere; what `check-config`
//! prints; exit codes.

use super::*;

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
