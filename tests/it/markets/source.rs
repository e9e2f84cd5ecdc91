//! The shipped market data is exactly what its generator writes with the `exchange_calendars`
//! version it pins: the test runs `tests/data/market_data.py` into a temporary folder and
//! compares every file byte for byte. It needs a Python with `exchange_calendars` 4.13.2
//! (`python3` on PATH, as `.ci/run` installs it); without one it is skipped with a printed
//! reason, unless FCW_REQUIRE_CALENDAR_SOURCE=1 (what `.ci/run` sets).

use crate::support;

use std::path::Path;
use std::process::Command;

const PINNED: &str = "4.13.2";

fn python_with_the_pinned_version() -> bool {
    let found = Command::new("python3")
        .args([
            "-c",
            "import exchange_calendars as xc; print(xc.__version__)",
        ])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == PINNED);
    let what = format!("python3 with exchange_calendars {PINNED}");
    support::tool_or_skip(found, &what, "FCW_REQUIRE_CALENDAR_SOURCE")
}

#[test]
fn the_shipped_data_is_what_the_pinned_exchange_calendars_generates() {
    if !python_with_the_pinned_version() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(root.join("tests/data/market_data.py"))
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "the generator failed");
    let mut compared = 0;
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let generated = entry.unwrap().path();
        let name = generated.file_name().unwrap().to_str().unwrap().to_owned();
        let shipped = if name == "XNYS.csv" {
            root.join("tests/data").join(&name)
        } else {
            root.join("src/calendar/markets").join(&name)
        };
        assert_eq!(
            std::fs::read(&generated).unwrap(),
            std::fs::read(&shipped).unwrap_or_default(),
            "{} differs from what the generator writes",
            shipped.display()
        );
        compared += 1;
    }
    let shipped = std::fs::read_dir(root.join("src/calendar/markets"))
        .unwrap()
        .count();
    assert_eq!(
        compared,
        shipped + 1,
        "every shipped file is generated, and only those"
    );
}
