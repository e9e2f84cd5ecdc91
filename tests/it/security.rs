//! Hostile input, secrets, least privilege and TLS: a garbage watchlist reaches no URL and no
//! key, secrets appear in no output even when everything fails, the documented ACL user is enough
//! for every job, and jobs run over verified TLS.

use crate::support;

use std::collections::HashSet;

use finance_cache_warmer::local_redis::LocalRedisOptions;
use finance_cache_warmer::ticker::Ticker;
use redis::AsyncCommands;
use support::{RecordedQuotes, conn, fcw, fixture, readme_acl, redis, redis_with, summary};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const REDIS_SECRET: &str = "S3CR3T-redis:pw@x";
const POLYGON_SECRET: &str = "pk_S3CR3T_key_0123";

fn replay(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.envs(support::REPLAY).env("FCW_LOG__FORMAT", "json")
}

#[tokio::test]
async fn a_garbage_watchlist_reaches_no_url_and_no_key() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let valid = ["AAPL", "BRK-B", "^GSPC", "EURUSD=X", "ES=F"];
    let mut garbage: Vec<Vec<u8>> = [
        &b""[..],
        b"   ",
        b"../../etc/passwd",
        b"AAPL%0d%0aX-Injected:1",
        b"AAPL\r\nX-Injected: 1",
        b"*",
        b"{tag}",
        b"\xff\xfe\xfd",
        b"'; DROP TABLE positions; --",
        b"$(rm -rf /)",
        b"`id`",
        b"a b",
        b"AAPL&crumb=stolen",
        b"AAPL?x=1",
        b"AAPL#frag",
        b"\x00\x01\x02",
    ]
    .iter()
    .map(|g| g.to_vec())
    .collect();
    garbage.push(vec![b'A'; 10 * 1024]);
    // Thousands more: random bytes, each with a character no ticker has.
    let mut rng = fastrand::Rng::with_seed(42);
    for _ in 0..3000 {
        let mut member: Vec<u8> = (0..rng.usize(1..40)).map(|_| rng.u8(..)).collect();
        member.insert(rng.usize(..=member.len()), b'!');
        garbage.push(member);
    }
    let unique: HashSet<Vec<u8>> = garbage.iter().cloned().collect();
    assert!(unique.iter().all(|g| Ticker::parse(g).is_err()));
    let _: () = c.sadd("finance:watchlist", &valid).await.unwrap();
    for chunk in garbage.chunks(500) {
        let _: () = c.sadd("finance:watchlist", chunk).await.unwrap();
    }
    let upstream = support::yahoo(RecordedQuotes::new(std::time::Duration::ZERO)).await;
    let (code, _, err) = support::run(
        fcw()
            .args(["once", "stock"])
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri())
            .env(
                "FCW_PROVIDER__YAHOO__COOKIE_URL",
                format!("{}/cookie", upstream.uri()),
            )
            .env("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0")
            .env("FCW_LOG__FORMAT", "json"),
    );
    assert_eq!(code, Some(0), "{err}");
    let s = summary(&err, "stock");
    assert_eq!(
        s["invalid"].as_u64(),
        Some(unique.len() as u64),
        "every garbage member counted once"
    );
    assert_eq!(s["written"].as_u64(), Some(valid.len() as u64));
    // Only valid tickers reached a URL ...
    for request in upstream.received_requests().await.unwrap() {
        assert!(
            !request.url.as_str().contains("Injected") && !request.url.as_str().contains("stolen"),
            "{}",
            request.url
        );
        if let Some((_, symbols)) = request.url.query_pairs().find(|(k, _)| k == "symbols") {
            for symbol in symbols.split(',') {
                assert!(valid.contains(&symbol), "{symbol:?} reached a URL");
            }
        }
    }
    // ... and a key.
    let keys: Vec<String> = c.keys("*").await.unwrap();
    let expected: HashSet<String> = valid
        .iter()
        .map(|v| format!("finance:cache:stock:{v}"))
        .chain([
            "finance:watchlist".into(),
            "finance:warmer:run:stock".into(),
        ])
        .collect();
    assert_eq!(keys.into_iter().collect::<HashSet<_>>(), expected);
    // The logs stay one line per event and short, whatever was in the watchlist.
    assert!(
        err.lines().all(|l| l.len() < 4000),
        "a log line carries a whole garbage member"
    );
    assert!(
        err.lines().count() < 100,
        "{} log lines",
        err.lines().count()
    );
}

#[tokio::test]
async fn every_job_runs_as_the_readme_least_privilege_user_and_secrets_never_show() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::cmd("ACL")
        .arg(readme_acl(REDIS_SECRET))
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::pipe()
        .sadd("finance:watchlist", &["AAPL", "QQQ", "BTC-USD"])
        .sadd("finance:positions:index", &["1", "2"])
        .set("finance:position:1", "{}")
        .set("finance:position:3", "{}")
        .sadd("auth:groups", &["g"])
        .sadd("auth:inviter:alice", &["c1"])
        .set("finance:cache:stock:GONE", "{}")
        .query_async(&mut c)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        r#"
[integrity]
grace = "0s"
prune_unwatched = true
[[integrity.rules]]
index = "finance:positions:index"
member_key = "finance:position:{member}"
reindex = true
object_pattern = "finance:position:*"
[[integrity.rules]]
index = "auth:groups"
member_key = "auth:group:{member}"
[[integrity.rules]]
index = "auth:inviter:*"
member_key = "auth:invitation:{member}"
"#,
    )
    .unwrap();
    // Polygon first in the chain, failing in every way it can; replay takes over.
    let polygon = MockServer::start().await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/AAPL"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&polygon)
        .await;
    Mock::given(path("/v2/snapshot/locale/us/markets/stocks/tickers/QQQ"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&polygon)
        .await;
    Mock::given(path(
        "/v2/snapshot/locale/us/markets/stocks/tickers/BTC-USD",
    ))
    .respond_with(ResponseTemplate::new(200).set_body_raw(
        fixture("polygon/v2_snapshot_stocks_ticker_AAPL.mock.json"),
        "application/json",
    ))
    .mount(&polygon)
    .await;
    let user_url = format!("redis://warmer@127.0.0.1:{}/0", server.port());
    let run = |args: &[&str], url: &str| {
        let mut cmd = fcw();
        replay(&mut cmd)
            .arg("-c")
            .arg(&config)
            .args(args)
            .env("FCW_REDIS__URL", url)
            .env("FCW_REDIS__PASSWORD", REDIS_SECRET)
            .env("FCW_PROVIDER__STOCK", "polygon,replay")
            .env("FCW_PROVIDER__POLYGON__BASE_URL", polygon.uri())
            .env("FCW_PROVIDER__POLYGON__API_KEY", POLYGON_SECRET)
            .env("FCW_PROVIDER__MAX_RETRIES", "1")
            .env("FCW_LOG__LEVEL", "trace");
        support::run(&mut cmd)
    };
    let mut everything = String::new();
    let (code, out, err) = run(&["once", "all"], &user_url);
    everything.push_str(&out);
    everything.push_str(&err);
    assert_eq!(code, Some(0), "{err}");
    for job in ["stock", "options", "earnings", "integrity"] {
        assert_eq!(summary(&err, job)["outcome"], "ok", "{job}");
    }
    let i = summary(&err, "integrity");
    assert_eq!(
        (
            i["removed"].as_u64(),
            i["reindexed"].as_u64(),
            i["pruned"].as_u64()
        ),
        (Some(3), Some(1), Some(1)),
        "{i}"
    );
    // The runs recorded themselves, and `status` reads it all back as the same user.
    let (code, out, err) = run(&["status", "--json"], &user_url);
    assert_eq!(code, Some(0), "{out}{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    for j in status["jobs"].as_array().unwrap() {
        assert_eq!(j["last_run"]["outcome"], "ok", "{j}");
    }
    everything.push_str(&out);
    everything.push_str(&err);
    let denied: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        denied.is_empty(),
        "the user was denied something: {denied:?}"
    );
    let (code, out, err) = run(&["check-config", "--connect"], &user_url);
    assert_eq!(code, Some(0), "{err}");
    everything.push_str(&out);
    everything.push_str(&err);
    // Failing on purpose: a wrong user, then Redis gone.
    let (code, out, err) = run(
        &["once", "stock"],
        &format!("redis://nobody@127.0.0.1:{}/0", server.port()),
    );
    assert_eq!(code, Some(3));
    everything.push_str(&out);
    everything.push_str(&err);
    let mut server = server;
    server.stop();
    let (code, out, err) = run(&["once", "stock"], &user_url);
    assert_eq!(code, Some(3));
    everything.push_str(&out);
    everything.push_str(&err);
    assert!(
        everything.len() > 10_000,
        "trace logging produced output to search"
    );
    for secret in [REDIS_SECRET, POLYGON_SECRET, "S3CR3T"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn jobs_run_over_verified_tls() {
    if !support::redis_has_tls() {
        println!("SKIPPED: the installed redis-server has no TLS support");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = support::tls_files(dir.path());
    let server = redis_with(LocalRedisOptions {
        tls: Some(tls.clone()),
        ..LocalRedisOptions::default()
    })
    .await;
    let (code, _, err) = support::run(replay(
        fcw()
            .args(["once", "all"])
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_REDIS__CA_FILE", &tls.ca),
    ));
    assert_eq!(code, Some(0), "{err}");
    for job in ["stock", "options", "earnings", "integrity"] {
        assert_eq!(summary(&err, job)["outcome"], "ok", "{job}");
    }
    // Without the private CA the server's certificate is not trusted.
    let (code, _, err) = support::run(replay(
        fcw()
            .args(["once", "stock"])
            .env("FCW_REDIS__URL", server.url()),
    ));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
