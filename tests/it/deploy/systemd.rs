//! The systemd unit and its documented install.

use super::*;

#[test]
fn the_systemd_unit_verifies_and_rates_ok_or_better() {
    let unit =
        std::fs::read_to_string(Path::new(ROOT).join("systemd/finance-cache-warmer.service"))
            .unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "LoadCredential=redis-password:",
        "RestartPreventExitStatus=2",
    ] {
        assert!(unit.contains(line), "the unit lacks {line}");
    }
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .unwrap();
    let grace = finance_cache_warmer::config::Settings::defaults()
        .unwrap()
        .scheduler
        .shutdown_grace
        .get()
        .as_secs();
    assert!(
        stop > grace,
        "TimeoutStopSec={stop}s must exceed shutdown_grace={grace}s"
    );
    if !available("systemd-analyze") {
        return;
    }
    // verify checks that ExecStart exists: point it at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("finance-cache-warmer.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/finance-cache-warmer",
            env!("CARGO_BIN_EXE_finance-cache-warmer"),
        ),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        verify.stderr.is_empty(),
        "warnings: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&copy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let overall = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{text}"));
    let score: f64 = overall
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        overall.contains(" OK") || overall.contains(" SAFE"),
        "{overall}"
    );
    assert!(score < 5.0, "{overall}");
    println!("{}", overall.trim());
}

/// The documented systemd path (docs/deployment.md), walked in a scratch root: `systemd/install.sh` lays the files out,
/// the unit verifies against them, and the installed binary reads the installed config both as
/// the service does (the password as a credential) and from a root shell (the file beside the
/// config), first as installed and then with a password, against a real password-protected Redis.
#[tokio::test]
async fn the_documented_systemd_install_walks_end_to_end() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let install = || {
        let out = Command::new(Path::new(ROOT).join("systemd/install.sh"))
            .arg(env!("CARGO_BIN_EXE_finance-cache-warmer"))
            .env("DESTDIR", &root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    install();
    let etc = root.join("etc/finance-cache-warmer");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let binary = root.join("usr/local/bin/finance-cache-warmer");
    assert_eq!(mode(&binary), 0o755);
    assert_eq!(mode(&etc.join("config.toml")), 0o644);
    // LoadCredential= fails the unit (243/CREDENTIALS) when its file is missing: it is there.
    assert_eq!(mode(&etc.join("redis-password")), 0o600);
    let unit = root.join("etc/systemd/system/finance-cache-warmer.service");
    assert!(unit.exists());
    if available("systemd-analyze") {
        // A scratch root has no systemd: the targets the unit's dependencies name, as stubs.
        let units = root.join("usr/lib/systemd/system");
        std::fs::create_dir_all(&units).unwrap();
        for target in [
            "sysinit",
            "basic",
            "shutdown",
            "network-online",
            "multi-user",
        ] {
            std::fs::write(units.join(format!("{target}.target")), "[Unit]\n").unwrap();
        }
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg("finance-cache-warmer.service")
            .output()
            .unwrap();
        assert!(
            verify.status.success() && verify.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    let server = support::redis_with(finance_cache_warmer::local_redis::LocalRedisOptions {
        extra_args: vec!["--requirepass".into(), "s3cret-pw".into()],
        ..Default::default()
    })
    .await;
    let config = etc.join("config.toml");
    // As the service runs it (credentials in $CREDENTIALS_DIRECTORY) and from a root shell.
    let credentials = scratch.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    let check = |as_service: bool| {
        // The installed copy, with the clean environment the suite gives the binary.
        let mut cmd = Command::new(&binary);
        cmd.env_clear()
            .envs(support::fcw().get_envs().filter_map(|(k, v)| Some((k, v?))))
            .arg("-c")
            .arg(&config)
            .args(["check-config", "--connect"]);
        if as_service {
            std::fs::copy(
                etc.join("redis-password"),
                credentials.join("redis-password"),
            )
            .unwrap();
            cmd.env("CREDENTIALS_DIRECTORY", &credentials);
        }
        support::run(&mut cmd)
    };
    // The operator's edit: the URL, then the password and its line.
    let installed = std::fs::read_to_string(&config).unwrap();
    let edited = installed.replace("redis://127.0.0.1:6379/0", &server.url());
    assert_ne!(
        edited, installed,
        "the example names the URL the docs say to edit"
    );
    std::fs::write(&config, &edited).unwrap();
    let (code, _, err) = check(false);
    assert_eq!(code, Some(3), "no password yet: refused, {err}");
    std::fs::write(etc.join("redis-password"), "s3cret-pw\n").unwrap();
    let edited = edited.replace("# password_file = ", "password_file = ");
    std::fs::write(&config, &edited).unwrap();
    for as_service in [true, false] {
        let (code, out, err) = check(as_service);
        assert_eq!(code, Some(0), "as service: {as_service}: {err}");
        assert!(out.contains("# redis: PONG"), "{out}");
        assert!(!out.contains("s3cret-pw") && !err.contains("s3cret-pw"));
    }
    // Installing again (an upgrade) keeps the operator's config and password.
    install();
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    assert_eq!(
        std::fs::read_to_string(etc.join("redis-password")).unwrap(),
        "s3cret-pw\n"
    );
}
