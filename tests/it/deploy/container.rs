//! The image and the Kubernetes overlays.

use super::*;

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
