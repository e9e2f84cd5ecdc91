//! What the cache costs in Redis: gzip above a threshold (read back by the documented Python
//! reader, and by the daemon itself), the strike window, and the value size cap.

use crate::support;

use std::io::Write;
use std::process::{Command, Stdio};

use finance_cache_warmer::codec;
use finance_cache_warmer::local_redis::LocalRedis;
use finance_cache_warmer::model::OptionsChain;
use redis::AsyncCommands;
use support::{assert_schema, conn, fcw, redis, run, summary};

const WATCHLIST: &[&str] = &["AAPL", "BRK-B", "GOOG", "QQQ", "MSFT"];

async fn server() -> LocalRedis {
    let server = redis().await;
    let _: () = conn(&server)
        .await
        .sadd("finance:watchlist", WATCHLIST)
        .await
        .unwrap();
    server
}

/// `once` on `server`, every job on the replay provider, with `env` on top.
fn once(server: &LocalRedis, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = fcw();
    cmd.arg("once")
        .args(args)
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_LOG__FORMAT", "json")
        .envs(support::REPLAY)
        .envs(env.iter().copied());
    let (code, _, err) = run(&mut cmd);
    assert_eq!(code, Some(0), "{err}");
    let job = if args[0] == "all" { "options" } else { args[0] };
    summary(&err, job)
}

async fn stored(server: &LocalRedis, key: &str) -> Vec<u8> {
    let value: Option<Vec<u8>> = conn(server).await.get(key).await.unwrap();
    value.unwrap_or_else(|| panic!("{key} is missing"))
}

/// The Python reader of docs/cache-format.md, run by python3 on `raw`: the JSON it returns.
fn python_reads(raw: &[u8]) -> serde_json::Value {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cache-format.md"))
            .unwrap();
    let snippet = readme
        .split("<!-- reader-begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- reader-end -->").next())
        .expect("the reader between its markers")
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    let program =
        format!("{snippet}\nimport sys\nprint(json.dumps(load(sys.stdin.buffer.read())))\n");
    let mut child = Command::new("python3")
        .args(["-c", &program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{program}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn gzip_values_above_the_threshold_read_back_as_what_was_written() {
    let server = server().await;
    once(&server, &["all"], &[("FCW_CACHE__COMPRESS", "gzip")]);
    let big = stored(&server, "finance:cache:options:AAPL").await;
    assert!(
        big.starts_with(&codec::GZIP_MAGIC),
        "an 18 KB chain is compressed"
    );
    let json = codec::decode(&big, codec::MAX_JSON_BYTES).unwrap();
    assert!(
        json.len() >= 4096 && big.len() < json.len() / 5,
        "{} -> {}",
        json.len(),
        big.len()
    );
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_schema("options", &value);
    let chain: OptionsChain = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(
        chain.chains[0].calls.len() + chain.chains[0].puts.len(),
        102
    );
    // The app's reader, from docs/cache-format.md, gets exactly that back, and reads plain values too.
    assert_eq!(python_reads(&big), value);
    let small = stored(&server, "finance:cache:stock:AAPL").await;
    assert_eq!(small[0], b'{', "a 300-byte quote stays plain JSON");
    assert_eq!(
        python_reads(&small),
        serde_json::from_slice::<serde_json::Value>(&small).unwrap()
    );
}

#[tokio::test]
async fn the_threshold_decides_and_the_daemon_reads_its_own_compressed_values() {
    let server = server().await;
    // Above every value: nothing is compressed.
    once(
        &server,
        &["options"],
        &[
            ("FCW_CACHE__COMPRESS", "gzip"),
            ("FCW_CACHE__COMPRESS_MIN_BYTES", "1048576"),
        ],
    );
    assert_eq!(stored(&server, "finance:cache:options:AAPL").await[0], b'{');
    // Zero: everything is, earnings too ...
    let gzip_all = [
        ("FCW_CACHE__COMPRESS", "gzip"),
        ("FCW_CACHE__COMPRESS_MIN_BYTES", "0"),
    ];
    once(&server, &["earnings"], &gzip_all);
    for t in WATCHLIST {
        let v = stored(&server, &format!("finance:cache:earnings:{t}")).await;
        assert!(v.starts_with(&codec::GZIP_MAGIC), "{t}");
    }
    // ... and refresh-ahead, which reads the cached earnings date, still finds them fresh.
    let s = once(&server, &["earnings"], &gzip_all);
    assert_eq!(
        s["skipped_fresh"].as_u64(),
        Some(WATCHLIST.len() as u64),
        "{s}"
    );
    // Plain again when compression is off; readers never needed to know.
    once(&server, &["options", "--force"], &[]);
    assert_eq!(stored(&server, "finance:cache:options:AAPL").await[0], b'{');
}

#[tokio::test]
async fn the_strike_window_keeps_only_strikes_near_the_underlying() {
    let server = server().await;
    once(
        &server,
        &["options"],
        &[("FCW_JOBS__OPTIONS__STRIKE_WINDOW", "0.1")],
    );
    let chain: OptionsChain =
        serde_json::from_slice(&stored(&server, "finance:cache:options:AAPL").await).unwrap();
    let price = chain.underlying_price.unwrap();
    let strikes: Vec<f64> = chain.chains[0]
        .calls
        .iter()
        .chain(&chain.chains[0].puts)
        .map(|c| c.strike)
        .collect();
    assert!(
        !strikes.is_empty() && strikes.len() < 102,
        "{}",
        strikes.len()
    );
    for strike in strikes {
        assert!((strike - price).abs() <= price * 0.1, "{strike} vs {price}");
    }
    assert_eq!(
        chain.expirations.len(),
        20,
        "every listed expiry is still listed"
    );
}

#[tokio::test]
async fn a_value_over_the_cap_is_not_written_and_the_previous_one_stays() {
    let server = server().await;
    once(&server, &["options"], &[]);
    let before = stored(&server, "finance:cache:options:AAPL").await;
    let s = once(
        &server,
        &["options", "--force"],
        &[("FCW_CACHE__MAX_VALUE_BYTES", "4KiB")],
    );
    // AAPL (18 KB) and BRK-B (9 KB) are over 4 KiB; the rest fit.
    assert_eq!(
        (s["too_large"].as_u64(), s["failed"].as_u64()),
        (Some(2), Some(2)),
        "{s}"
    );
    assert_eq!(s["written"].as_u64(), Some(3));
    assert!(
        s["failures"]
            .as_str()
            .unwrap()
            .contains("exceeds cache.max_value_bytes (4096 bytes)"),
        "{s}"
    );
    assert_eq!(stored(&server, "finance:cache:options:AAPL").await, before);
    for t in ["GOOG", "QQQ", "MSFT"] {
        assert!(
            stored(&server, &format!("finance:cache:options:{t}"))
                .await
                .len()
                <= 4096
        );
    }
}
