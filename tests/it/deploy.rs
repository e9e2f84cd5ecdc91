//! The deployment files pass the checks their platforms run: `systemd-analyze verify` and
//! `security`, hadolint, and Kubernetes schema validation; the Grafana dashboard and the documented
//! alert rules only query series the daemon exports. A missing tool skips its check with a
//! printed reason, unless FCW_REQUIRE_DEPLOY_TOOLS=1 (what `.ci/run` sets after installing them).

use crate::support;

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Whether `tool` can run here; if not, the check is skipped (or fails in CI).
fn available(tool: &str) -> bool {
    // kubectl has no --version.
    let probe: &[&str] = if tool == "kubectl" {
        &["version", "--client"]
    } else {
        &["--version"]
    };
    let found = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("FCW_REQUIRE_DEPLOY_TOOLS").as_deref() != Ok("1"),
            "{tool} is required here (FCW_REQUIRE_DEPLOY_TOOLS=1) but not installed"
        );
        println!("SKIPPED: {tool} is not installed");
    }
    found
}

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

#[test]
fn the_dockerfile_passes_hadolint() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("--locked")
            && dockerfile.contains("USER 65532")
            && dockerfile.contains(r#"CMD ["run"]"#)
    );
    if !available("hadolint") {
        return;
    }
    let out = Command::new("hadolint")
        .arg(Path::new(ROOT).join("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Kubernetes version each overlay needs at least, as docs/deployment.md states: CronJob `timeZone`
/// is GA in 1.27; the one-off Job's `backoffLimitPerIndex` is on by default from 1.29.
const MIN_KUBERNETES: [(&str, &str); 3] = [
    ("daemon", "1.27.0"),
    ("cronjobs", "1.27.0"),
    ("one-off", "1.29.0"),
];
/// The one place the image is named (`deploy/k8s/components/image`).
const IMAGE: &str = "registry.example.com/finance-cache-warmer:0.1.0";

/// `kubectl kustomize deploy/k8s/<overlay>` as JSON documents (PyYAML converts), or `None`
/// when the tools are missing (the check is skipped, or fails in CI).
fn render(overlay: &str) -> Option<(String, Vec<serde_json::Value>)> {
    if !available("kubectl") || !available("python3") {
        return None;
    }
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(Path::new(ROOT).join("deploy/k8s").join(overlay))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    python
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let json = python.wait_with_output().unwrap();
    assert!(
        json.status.success(),
        "PyYAML is needed to read the rendered manifests"
    );
    Some((yaml, serde_json::from_slice(&json.stdout).unwrap()))
}

/// Every pod template in `docs`, with the name of the object that holds it.
fn pods(docs: &[serde_json::Value]) -> Vec<(String, &serde_json::Value)> {
    docs.iter()
        .filter_map(|d| {
            let pod = match d["kind"].as_str()? {
                "Deployment" | "Job" => &d["spec"]["template"]["spec"],
                "CronJob" => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                _ => return None,
            };
            Some((d["metadata"]["name"].as_str()?.to_owned(), pod))
        })
        .collect()
}

#[test]
fn each_kubernetes_overlay_renders_one_mode_and_passes_schema_validation() {
    for (overlay, kinds) in [
        (
            "daemon",
            &[
                "ConfigMap",
                "Deployment",
                "Namespace",
                "PodDisruptionBudget",
            ][..],
        ),
        (
            "cronjobs",
            &[
                "ConfigMap",
                "CronJob",
                "CronJob",
                "CronJob",
                "CronJob",
                "Namespace",
            ],
        ),
        ("one-off", &["Job"]),
    ] {
        let Some((yaml, docs)) = render(overlay) else {
            return;
        };
        let mut found: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        found.sort();
        // One mode per overlay, and never the example Secret (it would overwrite the real one).
        assert_eq!(found, kinds, "{overlay}");
        for d in &docs {
            if d["kind"] != "Namespace" {
                assert_eq!(
                    d["metadata"]["namespace"], "finance-cache-warmer",
                    "{overlay}: {d}"
                );
            }
        }
        for (name, pod) in pods(&docs) {
            for c in pod["containers"].as_array().unwrap() {
                assert_eq!(c["image"], IMAGE, "{overlay}/{name}");
            }
        }
        if overlay == "daemon" {
            let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
            let template = &deployment["spec"]["template"]["metadata"];
            // Scraped per pod, not through a Service.
            assert_eq!(template["annotations"]["prometheus.io/scrape"], "true");
            assert_eq!(template["annotations"]["prometheus.io/port"], "9184");
            let pdb = docs
                .iter()
                .find(|d| d["kind"] == "PodDisruptionBudget")
                .unwrap();
            for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
                assert_eq!(
                    &template["labels"][k], v,
                    "the budget covers the daemon's pods"
                );
            }
        }
        if !available("kubernetes-validate") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, &yaml).unwrap();
        let min = MIN_KUBERNETES
            .iter()
            .find(|(o, _)| *o == overlay)
            .unwrap()
            .1;
        for version in [min, "1.37.0"] {
            let out = Command::new("kubernetes-validate")
                .args(["--strict", "-k", version])
                .arg(&file)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{overlay} on {version}: {text}");
            assert_eq!(
                text.matches(" passed for resource ").count(),
                kinds.len(),
                "{overlay} on {version}: {text}"
            );
        }
    }
}

/// Whether a process of `uid`, group `gid` and supplementary group `fs_group` (what kubelet
/// gives every container of a pod with `fsGroup`) may read a Secret file of `mode`: kubelet
/// writes them owned by root, with group `fsGroup` when the pod sets one.
fn may_read(mode: u32, uid: u64, gid: u64, fs_group: Option<u64>) -> bool {
    uid == 0 || mode & 0o004 != 0 || (mode & 0o040 != 0 && (gid == 0 || fs_group.is_some()))
}

#[test]
fn every_mounted_secret_is_readable_by_its_pods_user_or_group() {
    let root_here = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let mut checked = 0;
    for overlay in ["daemon", "cronjobs", "one-off"] {
        let Some((_, docs)) = render(overlay) else {
            return;
        };
        for (name, pod) in pods(&docs) {
            let security = &pod["securityContext"];
            let fs_group = security["fsGroup"].as_u64();
            for volume in pod["volumes"].as_array().into_iter().flatten() {
                let Some(secret) = volume.get("secret") else {
                    continue;
                };
                // Kubernetes' default mode is 0644.
                let mode = secret["defaultMode"].as_u64().unwrap_or(0o644) as u32;
                for c in pod["containers"].as_array().unwrap() {
                    let mounts = c["volumeMounts"].as_array().into_iter().flatten();
                    if !mounts.into_iter().any(|m| m["name"] == volume["name"]) {
                        continue;
                    }
                    let id = |k: &str| c["securityContext"][k].as_u64().or(security[k].as_u64());
                    // The image's own user (Dockerfile `USER 65532`) when the pod names none.
                    let (uid, gid) = (
                        id("runAsUser").unwrap_or(65532),
                        id("runAsGroup").unwrap_or(65532),
                    );
                    assert!(
                        may_read(mode, uid, gid, fs_group),
                        "{overlay}/{name}: secret volume {} mode {mode:o} is not readable by uid {uid} gid {gid} fsGroup {fs_group:?}",
                        volume["name"]
                    );
                    if root_here {
                        assert!(
                            read_as(mode, uid, gid, fs_group),
                            "{overlay}/{name}: the kernel agrees"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 6, "{checked} secret mounts checked");
    if root_here {
        // What the manifests did before: 0400 and no fsGroup.
        assert!(!may_read(0o400, 65532, 65532, None));
        assert!(
            !read_as(0o400, 65532, 65532, None),
            "0400 root:root is unreadable"
        );
    }
}

/// Reads a file laid out as kubelet lays out a Secret (root-owned, group fsGroup if any, `mode`)
/// as that user with setpriv(1): whether it could.
fn read_as(mode: u32, uid: u64, gid: u64, fs_group: Option<u64>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "x").unwrap();
    std::os::unix::fs::chown(&file, Some(0), Some(fs_group.unwrap_or(0) as u32)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    let groups = fs_group.map_or("".to_owned(), |g| g.to_string());
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        cmd.arg(format!("--groups={groups}"));
    }
    cmd.arg("cat").arg(&file).output().unwrap().status.success()
}

#[test]
fn the_kubernetes_config_map_holds_a_valid_config() {
    let yaml =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/k8s/base/configmap.yaml")).unwrap();
    let toml: String = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("config.toml: |"))
        .skip(1)
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, toml).unwrap();
    for secret in ["redis-password", "polygon-api-key"] {
        std::fs::write(dir.path().join(secret), "x").unwrap();
    }
    // The secret paths exist only in the pod: point them at stand-ins.
    let env = vec![
        (
            "FCW_REDIS__PASSWORD_FILE".into(),
            dir.path().join("redis-password").into_os_string(),
        ),
        (
            "FCW_PROVIDER__POLYGON__API_KEY_FILE".into(),
            dir.path().join("polygon-api-key").into_os_string(),
        ),
    ];
    let s = finance_cache_warmer::config::load_from(Some(&file), env).unwrap();
    assert_eq!(s.provider.stock.len(), 2);
}

/// The `fcw_*` series an expression or a text names, with a histogram's `_bucket`, `_sum` and
/// `_count` suffixes taken back to the histogram's name.
fn series_named(text: &str) -> Vec<String> {
    use finance_cache_warmer::metrics::{Kind, SERIES};
    let mut found = Vec::new();
    for (at, _) in text.match_indices("fcw_") {
        if text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                SERIES
                    .iter()
                    .any(|(n, kind, _)| *n == base && *kind == Kind::Histogram)
                    .then(|| base.to_owned())
            })
            .unwrap_or(name);
        found.push(base);
    }
    found
}

fn exported() -> Vec<&'static str> {
    finance_cache_warmer::metrics::SERIES
        .iter()
        .map(|(name, _, _)| *name)
        .collect()
}

fn panel_exprs(panels: &[serde_json::Value], exprs: &mut Vec<(String, String)>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        if let Some(nested) = panel["panels"].as_array() {
            panel_exprs(nested, exprs);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push((title.clone(), target["expr"].as_str().unwrap().to_owned()));
        }
    }
}

#[test]
fn every_metric_the_grafana_dashboard_queries_is_one_the_daemon_exports() {
    let text =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/grafana/dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        dashboard["__inputs"][0]["name"], "DS_PROMETHEUS",
        "importable with a data source choice"
    );
    let mut exprs = Vec::new();
    panel_exprs(dashboard["panels"].as_array().unwrap(), &mut exprs);
    let exported = exported();
    let mut used = std::collections::BTreeSet::new();
    for (title, expr) in &exprs {
        let names = series_named(expr);
        assert!(
            !names.is_empty(),
            "panel {title:?} queries no fcw_ series: {expr}"
        );
        for name in names {
            assert!(
                exported.contains(&name.as_str()),
                "panel {title:?} queries {name}, which the daemon does not export: {expr}"
            );
            used.insert(name);
        }
        // Every replica counts the same Redis: adding their coverage up would show 200 %.
        if ["fcw_cache_keys", "fcw_watchlist_tickers"]
            .iter()
            .any(|gauge| expr.contains(gauge))
        {
            assert!(
                !expr.contains("sum"),
                "panel {title:?} adds up the replicas' coverage: {expr}"
            );
        }
    }
    // What the dashboard is for: runs, durations, upstream traffic and errors, retries and
    // rate-limit waits, cache coverage, the age of the last success.
    for needed in [
        "fcw_runs_total",
        "fcw_run_duration_seconds",
        "fcw_upstream_requests_total",
        "fcw_upstream_retries_total",
        "fcw_rate_limit_waits_total",
        "fcw_cache_keys",
        "fcw_watchlist_tickers",
        "fcw_last_success_timestamp_seconds",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn the_exported_series_are_the_ones_recorded_and_the_readme_documents() {
    let exported = exported();
    // Every `counter!`/`gauge!`/`histogram!` in the metrics module names a listed series, and
    // every listed series is recorded somewhere there.
    let source = std::fs::read_to_string(Path::new(ROOT).join("src/metrics.rs")).unwrap();
    let stats = source.as_str();
    let recorded: std::collections::BTreeSet<String> =
        ["counter!(\"", "gauge!(\"", "histogram!(\""]
            .iter()
            .flat_map(|mac| {
                stats
                    .match_indices(mac)
                    .map(move |(at, _)| &stats[at + mac.len()..])
            })
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect();
    let listed: std::collections::BTreeSet<String> =
        exported.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(recorded, listed);
    // The metrics table and alert rules (docs/monitoring.md) name listed series only, and the table names them all.
    let readme = std::fs::read_to_string(Path::new(ROOT).join("docs/monitoring.md")).unwrap();
    for name in series_named(&readme) {
        assert!(
            exported.contains(&name.as_str()),
            "docs/monitoring.md names {name}, which is not exported"
        );
    }
    for name in &exported {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "the metrics table of docs/monitoring.md lacks {name}"
        );
    }
}
