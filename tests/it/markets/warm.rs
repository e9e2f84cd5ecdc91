//! The warm jobs end to end: recorded instruments of seven markets in one watchlist, `once` at
//! pinned instants, and each key's TTL is its own market's (London closing, Tokyo at lunch,
//! Saturday crypto, the FX weekend, UK Boxing Day), the stock value records its `calendar`,
//! empty option chains wait `ttl.options.none`, and earnings count to midnight in the listing's
//! zone. Past the shipped data, a market follows its regular week and the run says so once.

use crate::support;

use finance_cache_warmer::local_redis::LocalRedis;
use redis::AsyncCommands;
use support::{assert_ttl, conn, fcw, log_lines, redis, run, summary};

/// The recordings the replay provider serves: each instrument's own.
const RECORDINGS: &[&str] = &[
    "quote_v7_OCDO.L_LSE_REGULAR_2025-02-17.json",
    "quote_v7_TSCO.L_LSE_CLOSED_2026-05-31_reserialized.json",
    "quote_v7_GS2C.DE_XETRA_REGULAR_2025-10-27_wire.json",
    "quote_v7_ORSTED.CO_CPH_REGULAR_2025-02-17.json",
    "quote_v7_7203.T_JPX_Tokyo_REGULAR_2026-05-28_reserialized.json",
    "quote_v7_EURUSD=X_CCY_CURRENCY_2025-02-17.json",
    "quote_BTC-USD_crypto.json",
    "quote_AAPL_2026-10.json",
    "options_AAPL_nearest_expiry.json",
    "options_BTC-USD_no_options.json",
    "options_EURUSD=X_no_options.json",
    "quoteSummary_calendarEvents_OCDO.L.json",
    "quoteSummary_calendarEvents_ORSTED.CO.json",
    "quoteSummary_calendarEvents_AAPL.json",
];

const WATCHLIST: &[&str] = &[
    "OCDO.L",
    "TSCO.L",
    "GS2C.DE",
    "ORSTED.CO",
    "7203.T",
    "EURUSD=X",
    "BTC-USD",
    "AAPL",
];

/// Every job each minute with a 10 s timeout: a value must outlive the next run (at most 71 s),
/// less than every TTL below, so the markets decide.
const MINUTELY: [(&str, &str); 6] = [
    ("FCW_JOBS__STOCK__SCHEDULE", "0 * * * * *"),
    ("FCW_JOBS__STOCK__TIMEOUT", "10s"),
    ("FCW_JOBS__OPTIONS__SCHEDULE", "0 * * * * *"),
    ("FCW_JOBS__OPTIONS__TIMEOUT", "10s"),
    ("FCW_JOBS__EARNINGS__SCHEDULE", "0 * * * * *"),
    ("FCW_JOBS__EARNINGS__TIMEOUT", "10s"),
];

fn replay_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("yahoo")).unwrap();
    for name in RECORDINGS {
        std::fs::write(
            dir.path().join("yahoo").join(name),
            support::fixture(&format!("yahoo/{name}")),
        )
        .unwrap();
    }
    dir
}

/// Runs `once <job> --force --at <at>` and returns its stderr.
fn once(server: &LocalRedis, dir: &tempfile::TempDir, job: &str, at: &str) -> String {
    let (code, _, err) = run(fcw()
        .args(["once", job, "--force", "--at", at])
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_LOG__FORMAT", "json")
        .env("FCW_PROVIDER__REPLAY__DIR", dir.path())
        .env("FCW_SCHEDULER__BATCH_SIZE", "3")
        .envs(support::REPLAY)
        .envs(MINUTELY));
    assert_eq!(code, Some(0), "{job} at {at}: {err}");
    err
}

#[tokio::test]
async fn each_key_lives_by_its_own_markets_clock() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c.sadd("finance:watchlist", WATCHLIST).await.unwrap();
    let dir = replay_dir();
    for (at, expected) in [
        (
            // Wednesday 16:25 GMT: London and Xetra close at 16:30Z, Copenhagen closed at
            // 16:00Z, Tokyo is closed for the night, New York is mid-session.
            "2026-12-02T16:25:00Z",
            [300, 300, 300, 3600, 3600, 600, 600, 600],
        ),
        (
            // 11:45 in Tokyo: the lunch break ends at 12:30 (45 min); Europe is closed, New
            // York too; FX and crypto trade.
            "2026-12-02T02:45:00Z",
            [3600, 3600, 3600, 3600, 2700, 600, 600, 3600],
        ),
        (
            // Saturday noon: only crypto trades.
            "2026-12-05T12:00:00Z",
            [3600, 3600, 3600, 3600, 3600, 3600, 600, 3600],
        ),
        (
            // Monday 28 December 10:00 GMT: the UK's Boxing Day holiday; Xetra and Copenhagen
            // trade; Tokyo has closed (15:30 JST = 06:30Z); New York opens at 14:30Z.
            "2026-12-28T10:00:00Z",
            [3600, 3600, 600, 600, 3600, 600, 600, 3600],
        ),
    ] {
        let err = once(&server, &dir, "stock", at);
        assert_eq!(
            summary(&err, "stock")["written"],
            WATCHLIST.len(),
            "{at}: {err}"
        );
        for (ticker, ttl) in WATCHLIST.iter().zip(expected) {
            let key = format!("finance:cache:stock:{ticker}");
            assert_ttl(&mut c, &key, ttl, &format!("{ticker} at {at}")).await;
        }
    }
    // The stock value records the market its TTL followed.
    for (ticker, market) in WATCHLIST
        .iter()
        .zip(["XLON", "XLON", "XETR", "XCSE", "XTKS", "FX", "24/7", "XNYS"])
    {
        let value: serde_json::Value = serde_json::from_str(
            &c.get::<_, String>(format!("finance:cache:stock:{ticker}"))
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(value["calendar"], market, "{ticker}");
        support::assert_schema("stock", &value);
    }
    // `status` shows the watchlist's mix of markets.
    let (code, out, err) = run(fcw()
        .args(["status", "--json"])
        .env("FCW_REDIS__URL", server.url()));
    assert!(matches!(code, Some(0 | 1)), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["watchlist"]["calendars"],
        serde_json::json!({"24/7": 1, "FX": 1, "XCSE": 1, "XETR": 1, "XLON": 2, "XNYS": 1, "XTKS": 1})
    );
    let (_, text, _) = run(fcw().arg("status").env("FCW_REDIS__URL", server.url()));
    assert!(
        text.contains("Markets: 24/7 1, FX 1, XCSE 1, XETR 1, XLON 2, XNYS 1, XTKS 1"),
        "{text}"
    );
}

#[tokio::test]
async fn options_and_earnings_follow_the_listing() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c
        .sadd(
            "finance:watchlist",
            &["AAPL", "BTC-USD", "EURUSD=X", "OCDO.L", "ORSTED.CO"],
        )
        .await
        .unwrap();
    let dir = replay_dir();
    // Tokyo's lunch hour: New York is closed for another 11 h 45 min.
    once(&server, &dir, "options", "2026-12-02T02:45:00Z");
    assert_ttl(&mut c, "finance:cache:options:AAPL", 3600, "closed").await;
    for empty in ["BTC-USD", "EURUSD=X"] {
        let key = format!("finance:cache:options:{empty}");
        assert_ttl(&mut c, &key, 86_400, "an empty chain: ttl.options.none").await;
    }
    // Ørsted reports on 2025-05-07, a Copenhagen date: from noon UTC on 30 April the key lives
    // until midnight in Copenhagen (22:00Z on the 6th), not New York's or UTC's.
    once(&server, &dir, "earnings", "2025-04-30T12:00:00Z");
    assert_ttl(
        &mut c,
        "finance:cache:earnings:ORSTED.CO",
        6 * 86_400 + 10 * 3600,
        "until 2025-05-07 00:00 Europe/Copenhagen",
    )
    .await;
    let value: serde_json::Value = serde_json::from_str(
        &c.get::<_, String>("finance:cache:earnings:ORSTED.CO")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(value["earnings_date"], "2025-05-07");
}

#[tokio::test]
async fn past_its_data_a_market_follows_its_regular_week_and_the_run_says_so_once() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c
        .sadd(
            "finance:watchlist",
            &["OCDO.L", "TSCO.L", "GS2C.DE", "AAPL", "BTC-USD"],
        )
        .await
        .unwrap();
    let dir = replay_dir();
    // Monday 3 March 2036, 16:25 GMT: past the data (2035-12-31), London's regular week says
    // open until 16:30.
    let err = once(&server, &dir, "stock", "2036-03-03T16:25:00Z");
    assert_ttl(
        &mut c,
        "finance:cache:stock:OCDO.L",
        300,
        "the regular week",
    )
    .await;
    assert_ttl(
        &mut c,
        "finance:cache:stock:GS2C.DE",
        300,
        "the regular week",
    )
    .await;
    let said = log_lines(&err, "the market's calendar data has run out");
    let mut markets: Vec<&str> = said.iter().filter_map(|l| l["market"].as_str()).collect();
    markets.sort_unstable();
    // Two batches hold London tickers; each market is named once. The NYSE's rules and 24/7
    // have no end.
    assert_eq!(markets, ["XETR", "XLON"], "{err}");
    assert!(
        said.iter().all(|l| l["data_until"] == "2035-12-31"),
        "{said:?}"
    );
}

#[tokio::test]
async fn with_extended_hours_on_us_stock_keys_follow_the_post_market() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = c
        .sadd("finance:watchlist", &["AAPL", "OCDO.L"])
        .await
        .unwrap();
    let dir = replay_dir();
    // Wednesday 17:00 New York: post-market until 20:00 for US stock keys; London is closed,
    // and options keys ignore extended hours.
    for job in ["stock", "options"] {
        let (code, _, err) = run(fcw()
            .args(["once", job, "--force", "--at", "2026-12-02T22:00:00Z"])
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_PROVIDER__REPLAY__DIR", dir.path())
            .env("FCW_TTL__EXTENDED", "5m")
            .envs(support::REPLAY)
            .envs(MINUTELY));
        assert_eq!(code, Some(0), "{err}");
    }
    assert_ttl(&mut c, "finance:cache:stock:AAPL", 300, "ttl.extended").await;
    assert_ttl(&mut c, "finance:cache:stock:OCDO.L", 3600, "London closed").await;
    assert_ttl(
        &mut c,
        "finance:cache:options:AAPL",
        3600,
        "options: closed",
    )
    .await;
}
