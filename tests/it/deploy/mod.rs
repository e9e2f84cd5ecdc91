//! The deployment files pass the checks their platforms run: `systemd-analyze verify` and
//! `security`, hadolint, and Kubernetes schema validation; the Grafana dashboard and the documented
//! alert rules only query series the daemon exports. A missing tool skips its check with a
//! printed reason, unless FCW_REQUIRE_DEPLOY_TOOLS=1 (what `.ci/run` sets after installing them).

mod container;
mod dashboards;

pub(crate) use dashboards::panel_exprs;
mod systemd;

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
    support::tool_or_skip(found, tool, "FCW_REQUIRE_DEPLOY_TOOLS")
}
