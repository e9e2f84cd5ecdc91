//! `demo`: every job offline on a private `redis-server`, and nothing left behind.

use super::*;

#[test]
fn demo_runs_every_job_on_replay_and_a_private_redis_server() {
    let (code, out, err) = support::run(fcw().arg("demo"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("finance:watchlist with 11 members, provider replay"),
        "{out}"
    );
    for job in ["stock", "options", "earnings"] {
        assert!(
            out.lines().any(|l| l.starts_with(job)
                && l.contains(" ok ")
                && l.contains("invalid 1 written 10")),
            "{job}: {out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("finance:cache:stock:AAPL") && l.contains("333.69 USD")),
        "{out}"
    );
    assert!(
        !out.contains("(missing)"),
        "every key of every valid ticker is cached: {out}"
    );
}

/// Each valid sample, its market, and what the replay has recorded of its own: the options
/// chain (`Some(true)` with contracts, `Some(false)` an empty one, `None` no recording) and the
/// earnings (`Some(true)` a date, `Some(false)` no date, `None` no recording).
const SAMPLES: &[(&str, &str, Option<bool>, Option<bool>)] = &[
    ("AAPL", "XNYS", Some(true), Some(true)),
    ("MSFT", "XNYS", None, None),
    ("BABA", "XNYS", None, Some(true)),
    ("QQQ", "XNYS", None, Some(false)),
    ("OCDO.L", "XLON", None, Some(true)),
    ("GS2C.DE", "XETR", None, None),
    ("ORSTED.CO", "XCSE", None, Some(true)),
    ("7203.T", "XTKS", None, None),
    ("BTC-USD", "24/7", Some(false), Some(false)),
    ("EURUSD=X", "FX", Some(false), Some(false)),
];

const NOT_SHOWN: &str = "(not shown: no recording of its own, another's relabelled)";

/// A row of the demo's table: key, calendar, market state, TTL, value.
struct Row<'a> {
    key: &'a str,
    calendar: &'a str,
    market: &'a str,
    ttl: i64,
    value: String,
}

fn rows(out: &str) -> Vec<Row<'_>> {
    out.lines()
        .filter(|l| l.starts_with("finance:cache:"))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            Row {
                key: fields[0],
                calendar: fields[1],
                market: fields[2],
                ttl: fields[3].parse().unwrap_or_else(|_| panic!("a TTL: {l}")),
                value: fields[4..].join(" "),
            }
        })
        .collect()
}

#[test]
fn demo_shows_each_instrument_on_its_own_market_with_its_own_recordings_only() {
    let (code, out, err) = support::run(fcw().arg("demo"));
    assert_eq!(code, Some(0), "{err}");
    let rows = rows(&out);
    assert_eq!(rows.len(), 3 * SAMPLES.len(), "{out}");
    let row = |kind: &str, ticker: &str| {
        let key = format!("finance:cache:{kind}:{ticker}");
        rows.iter()
            .find(|r| r.key == key)
            .unwrap_or_else(|| panic!("no row {key}: {out}"))
    };
    let mut prices = std::collections::BTreeSet::new();
    for &(ticker, market, options, earnings) in SAMPLES {
        for kind in ["stock", "options", "earnings"] {
            let r = row(kind, ticker);
            assert_eq!(r.calendar, market, "{}: {out}", r.key);
            // The state depends on the hour; the column is always one of the states.
            assert!(
                ["open", "break", "closed", "extended"].contains(&r.market),
                "{}: {out}",
                r.key
            );
            assert!(r.ttl > 0, "{}: {out}", r.key);
        }
        // Crypto never closes.
        if market == "24/7" {
            assert_eq!(row("stock", ticker).market, "open", "{out}");
        }
        // Every sample's price is its own recording's: no two tickers share one, and each says
        // it is a recording.
        let stock = &row("stock", ticker).value;
        assert!(stock.contains(", recorded "), "{ticker}: {out}");
        let price = stock.split_whitespace().next().unwrap();
        assert!(
            prices.insert(price.to_owned()),
            "{ticker} shares {price}: {out}"
        );
        let chain = &row("options", ticker).value;
        match options {
            Some(true) => assert!(chain.contains(" contracts (recorded)"), "{ticker}: {out}"),
            Some(false) => assert_eq!(chain, "no options listed (recorded)", "{ticker}: {out}"),
            None => assert_eq!(chain, NOT_SHOWN, "{ticker}: {out}"),
        }
        let dates = &row("earnings", ticker).value;
        match earnings {
            Some(true) => assert!(dates.starts_with("earnings 20"), "{ticker}: {out}"),
            Some(false) => assert!(dates.starts_with("no earnings date"), "{ticker}: {out}"),
            None => assert_eq!(dates, NOT_SHOWN, "{ticker}: {out}"),
        }
    }
    for (ticker, currency) in [
        ("OCDO.L", " GBp "),
        ("GS2C.DE", " EUR "),
        ("ORSTED.CO", " DKK "),
        ("7203.T", " JPY "),
        ("BTC-USD", " USD "),
    ] {
        assert!(
            row("stock", ticker).value.contains(currency),
            "{ticker}: {out}"
        );
    }
}

#[test]
fn demo_labels_recorded_dates_as_recorded_and_never_calls_a_past_one_next() {
    let (code, out, err) = support::run(fcw().arg("demo"));
    assert_eq!(code, Some(0), "{err}");
    // "market time 2026-12-02T14:08:02Z: every TTL and MARKET below is for this instant"
    let at: chrono::DateTime<chrono::Utc> = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("market time ")?
                .split_once(": ")?
                .0
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("the demo's instant: {out}"));
    let today = at.date_naive();
    let rows = rows(&out);
    assert!(
        rows.iter()
            .all(|r| !r.value.to_lowercase().contains("next")),
        "{out}"
    );
    let mut dated = 0;
    for r in rows.iter().filter(|r| r.key.contains(":earnings:")) {
        let Some(rest) = r.value.strip_prefix("earnings ") else {
            continue;
        };
        let (date, label) = rest.split_once(' ').unwrap();
        let date: chrono::NaiveDate = date.parse().unwrap();
        assert!(label.starts_with("(recorded; "), "{}: {out}", r.key);
        // A day either side of the UTC date is another date in some listing's zone.
        let days = (date - today).num_days();
        if days < -1 {
            assert!(label.starts_with("(recorded; past"), "{}: {out}", r.key);
        } else if days > 1 {
            assert!(label.starts_with("(recorded; upcoming"), "{}: {out}", r.key);
        }
        dated += 1;
    }
    assert_eq!(
        dated, 4,
        "AAPL, BABA, OCDO.L and ORSTED.CO have recorded dates: {out}"
    );
}

/// Runs the command in its arguments as a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so
/// every process it leaves behind, running or dead and unreaped, becomes this one's child; then
/// prints the command's exit code and one line per such process.
const LEFT_BEHIND: &str = r#"
import ctypes, os, subprocess, sys
assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(code)
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
    if int(fields[1]) == os.getpid():
        print(pid, comm, "state", fields[0])
"#;

#[test]
fn demo_leaves_no_process_behind_not_even_a_zombie() {
    let demo = fcw();
    let (code, out, err) = support::run(
        Command::new("python3")
            .args(["-c", LEFT_BEHIND])
            .arg(demo.get_program())
            .arg("demo")
            .env_clear()
            .envs(demo.get_envs().filter_map(|(k, v)| Some((k, v?)))),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out, "0\n",
        "demo's exit code, then what it left behind: {out}"
    );
}
