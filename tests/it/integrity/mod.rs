//! The integrity job on real `redis-server`s: orphans go, live members stay, whatever the bytes,
//! the index patterns, the key types, and writers racing the job.

use crate::support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use finance_cache_warmer::config::{RedisUrl, Settings};
use finance_cache_warmer::jobs::{self, JobName, RunOptions};
use finance_cache_warmer::local_redis::LocalRedis;
use finance_cache_warmer::runner::{Outcome, Runner};
use finance_cache_warmer::shutdown::Shutdown;
use finance_cache_warmer::startup;
use finance_cache_warmer::store::Store;
use redis::AsyncCommands;
use support::{conn, fcw, log_lines, redis, summary};
use tokio::io::AsyncBufReadExt;

mod pages;

/// `once integrity` with `config` (TOML) on top of the defaults.
fn once(server: &LocalRedis, config: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, config).unwrap();
    let (code, _, err) = support::run(
        fcw()
            .arg("-c")
            .arg(&file)
            .args(["once", "integrity"])
            .args(args)
            .env("FCW_REDIS__URL", server.url())
            .env("FCW_LOG__FORMAT", "json"),
    );
    (code, err)
}

pub(crate) const NO_GRACE: &str = "[integrity]\ngrace = \"0s\"\n";

pub(crate) async fn members(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> HashSet<Vec<u8>> {
    c.smembers(key).await.unwrap()
}

fn set_of(items: &[&[u8]]) -> HashSet<Vec<u8>> {
    items.iter().map(|i| i.to_vec()).collect()
}

#[tokio::test]
async fn orphans_are_removed_and_live_members_kept_for_every_default_rule() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .sadd("finance:positions:index", &["1", "2", "3", "4"])
        .set("finance:position:1", "{}")
        .hset("finance:position:3", "qty", 5) // any type of object counts
        .sadd("auth:groups", &["admins", "ghosts"])
        .set("auth:group:admins", "{}")
        .sadd("auth:inviter:alice", &["c1", "c2"])
        .sadd("auth:inviter:bob", &["c3"])
        .set_ex("auth:invitation:c1", "{}", 600)
        .set("auth:inviter:carol", "not a set, not an index") // skipped by the pattern's TYPE filter
        .sadd("unrelated:index", &["x"])
        .query_async(&mut c)
        .await
        .unwrap();
    let (code, err) = once(&server, NO_GRACE, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        members(&mut c, "finance:positions:index").await,
        set_of(&[b"1", b"3"])
    );
    assert_eq!(members(&mut c, "auth:groups").await, set_of(&[b"admins"]));
    assert_eq!(
        members(&mut c, "auth:inviter:alice").await,
        set_of(&[b"c1"])
    );
    // The last member gone, Redis deletes the set itself.
    let bob: bool = c.exists("auth:inviter:bob").await.unwrap();
    assert!(!bob);
    assert_eq!(members(&mut c, "unrelated:index").await, set_of(&[b"x"]));
    let s = summary(&err, "integrity");
    assert_eq!(
        (
            s["checked"].as_u64(),
            s["orphans"].as_u64(),
            s["removed"].as_u64()
        ),
        (Some(9), Some(5), Some(5)),
        "{s}"
    );
    let rules = log_lines(&err, "integrity rule finished");
    let inviter = rules
        .iter()
        .find(|r| r["rule"] == "auth:inviter:*")
        .unwrap();
    assert_eq!(
        (
            inviter["indexes"].as_u64(),
            inviter["checked"].as_u64(),
            inviter["removed"].as_u64()
        ),
        (Some(2), Some(3), Some(2))
    );
}

#[tokio::test]
async fn members_are_substituted_literally_whatever_their_bytes() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let odd: &[&[u8]] = &[
        b"*",
        b"1*",
        b"{tag}",
        b"sp ace",
        b"new\nline",
        b"\xff\xfe",
        b"a?b",
        b"[x]",
    ];
    let _: () = c.sadd("finance:positions:index", odd).await.unwrap();
    // Objects that glob patterns would match, but no member's literal key.
    let _: () = redis::pipe()
        .set("finance:position:1", "{}")
        .set("finance:position:1x", "{}")
        .set("finance:position:axb", "{}")
        .set("finance:position:x", "{}")
        // And the literal keys of three members.
        .set("finance:position:{tag}", "{}")
        .set(b"finance:position:new\nline".as_slice(), "{}")
        .set(b"finance:position:\xff\xfe".as_slice(), "{}")
        .query_async(&mut c)
        .await
        .unwrap();
    let (code, err) = once(&server, NO_GRACE, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        members(&mut c, "finance:positions:index").await,
        set_of(&[b"{tag}", b"new\nline", b"\xff\xfe"])
    );
}

#[tokio::test]
async fn dry_run_reports_exactly_what_would_change_and_changes_nothing() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .sadd("finance:positions:index", &["1", "2", "3"])
        .set("finance:position:1", "{}")
        .set("finance:position:7", "{}")
        .sadd("finance:watchlist", "aapl")
        .set("finance:cache:stock:AAPL", "{}")
        .set("finance:cache:stock:ZZZZ", "{}")
        .query_async(&mut c)
        .await
        .unwrap();
    let config = r#"
[integrity]
grace = "0s"
prune_unwatched = true
[[integrity.rules]]
index = "finance:positions:index"
member_key = "finance:position:{member}"
reindex = true
object_pattern = "finance:position:*"
"#;
    for (args, dry_config) in [(&["--dry-run"][..], ""), (&[][..], "dry_run = true\n")] {
        let config = config.replace(
            "prune_unwatched = true\n",
            &format!("prune_unwatched = true\n{dry_config}"),
        );
        let (code, err) = once(&server, &config, args);
        assert_eq!(code, Some(0), "{err}");
        let s = summary(&err, "integrity");
        assert_eq!(s["dry_run"], true);
        assert_eq!(
            (
                s["orphans"].as_u64(),
                s["removed"].as_u64(),
                s["reindexed"].as_u64(),
                s["pruned"].as_u64()
            ),
            (Some(2), Some(2), Some(1), Some(1)),
            "{s}"
        );
        assert_eq!(
            members(&mut c, "finance:positions:index").await,
            set_of(&[b"1", b"2", b"3"]),
            "unchanged"
        );
        let zzzz: bool = c.exists("finance:cache:stock:ZZZZ").await.unwrap();
        assert!(zzzz, "unchanged");
    }
    // For real: the same numbers, and the changes.
    let (code, err) = once(&server, config, &[]);
    assert_eq!(code, Some(0), "{err}");
    let s = summary(&err, "integrity");
    assert_eq!(
        (
            s["removed"].as_u64(),
            s["reindexed"].as_u64(),
            s["pruned"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(
        members(&mut c, "finance:positions:index").await,
        set_of(&[b"1", b"7"])
    );
    let (aapl, zzzz): (bool, bool) = (
        c.exists("finance:cache:stock:AAPL").await.unwrap(),
        c.exists("finance:cache:stock:ZZZZ").await.unwrap(),
    );
    assert!(
        aapl && !zzzz,
        "a lower-case watchlist member still watches AAPL"
    );
}

#[tokio::test]
async fn a_wrong_type_index_is_reported_and_the_other_rules_still_run() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .set("auth:groups", "a string, not a set")
        .sadd("finance:positions:index", &["1", "2"])
        .set("finance:position:1", "{}")
        .query_async(&mut c)
        .await
        .unwrap();
    let (code, err) = once(&server, NO_GRACE, &[]);
    // One rule of three failed: under jobs.integrity.max_failure_ratio, a warning, not a failure.
    assert_eq!(code, Some(0), "{err}");
    let failed = log_lines(&err, "integrity rule failed; the other rules still run");
    assert_eq!(failed.len(), 1, "{err}");
    assert_eq!(failed[0]["rule"], "auth:groups");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("auth:groups is a string, not a set")
    );
    assert_eq!(
        members(&mut c, "finance:positions:index").await,
        set_of(&[b"1"])
    );
    let s = summary(&err, "integrity");
    assert_eq!(
        (s["failed"].as_u64(), s["level"].as_str()),
        (Some(1), Some("WARN"))
    );
    let value: String = c.get("auth:groups").await.unwrap();
    assert_eq!(value, "a string, not a set", "never touched");
}

#[tokio::test]
async fn one_run_waits_out_the_grace_and_removes_every_orphan_it_started_with() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .sadd("finance:positions:index", &["1", "2"])
        .set("finance:position:1", "{}")
        .query_async(&mut c)
        .await
        .unwrap();
    let started = Instant::now();
    let (code, err) = once(&server, "[integrity]\ngrace = \"1s\"\n", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the run waited the grace out"
    );
    assert_eq!(
        members(&mut c, "finance:positions:index").await,
        set_of(&[b"1"])
    );
}

fn shared_runner(server: &LocalRedis, grace: &str) -> Runner {
    let mut settings = Settings::defaults().unwrap();
    settings.redis.url = RedisUrl::parse(&server.url()).unwrap();
    settings.integrity.grace = grace.parse().unwrap();
    settings.integrity.scan_count = 50;
    let store = Store::lazy(&settings.redis).unwrap();
    Runner::new(
        startup::shared(settings, store).unwrap(),
        Shutdown::default(),
    )
}

/// A writer creating and deleting positions at full speed, in both orders, recording which ids it
/// considers live (created and not yet being deleted).
async fn writer(server_url: String, seed: u64, stop: Arc<AtomicBool>, next_id: Arc<AtomicU64>) {
    let mut c = redis::Client::open(server_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut live: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if live.len() < 20 && rng.bool() {
            let id = next_id.fetch_add(1, Ordering::Relaxed).to_string();
            let object = format!("finance:position:{id}");
            if rng.bool() {
                let _: () = c.set(&object, "{}").await.unwrap();
                let _: () = c.sadd("finance:positions:index", &id).await.unwrap();
            } else {
                // Index first: the object follows a moment later (well within the grace).
                let _: () = c.sadd("finance:positions:index", &id).await.unwrap();
                tokio::time::sleep(Duration::from_millis(rng.u64(0..20))).await;
                let _: () = c.set(&object, "{}").await.unwrap();
            }
            live.push(id);
        } else if !live.is_empty() {
            let id = live.swap_remove(rng.usize(..live.len()));
            let object = format!("finance:position:{id}");
            if rng.bool() {
                let _: () = c.del(&object).await.unwrap();
                let _: () = c.srem("finance:positions:index", &id).await.unwrap();
            } else {
                let _: () = c.srem("finance:positions:index", &id).await.unwrap();
                let _: () = c.del(&object).await.unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_never_lose_a_live_member_and_old_orphans_go() {
    let server = redis().await;
    let mut c = conn(&server).await;
    // Orphans from before: their objects are long gone.
    let stale: Vec<String> = (0..500).map(|i| format!("stale-{i}")).collect();
    let _: () = c.sadd("finance:positions:index", &stale).await.unwrap();
    let runner = shared_runner(&server, "300ms");
    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|seed| tokio::spawn(writer(server.url(), seed, stop.clone(), next_id.clone())))
        .collect();
    let mut removed = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let result = runner
            .run(jobs::named(JobName::Integrity), RunOptions::default())
            .await;
        assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
        removed += result.report.removed;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        next_id.load(Ordering::Relaxed) > 200,
        "the writers were busy"
    );
    assert!(removed >= 500, "the stale orphans went ({removed} removed)");
    // Not one live member is missing: every object that exists is in the index.
    let index = members(&mut c, "finance:positions:index").await;
    let objects: Vec<Vec<u8>> = c.keys("finance:position:*").await.unwrap();
    for object in &objects {
        let id = &object[b"finance:position:".len()..];
        assert!(
            index.contains(id),
            "live member {} lost",
            String::from_utf8_lossy(id)
        );
    }
    // With the writers stopped, one more run leaves no orphan at all.
    let result = runner
        .run(jobs::named(JobName::Integrity), RunOptions::default())
        .await;
    assert_eq!(result.outcome, Outcome::Ok);
    let index = members(&mut c, "finance:positions:index").await;
    assert_eq!(
        index.len(),
        objects.len(),
        "every index member has its object"
    );
}

#[test]
fn rule_config_is_checked() {
    let cases = [
        (
            "[[integrity.rules]]\nindex = \"i\"\nmember_key = \"no placeholder\"\n",
            "integrity.rules[0].member_key: \"no placeholder\" must contain {member} exactly once",
        ),
        (
            "[[integrity.rules]]\nindex = \"i\"\nmember_key = \"o:{member}\"\nreindex = true\n",
            "integrity.rules[0].object_pattern: reindex = true needs an object_pattern",
        ),
        (
            "[[integrity.rules]]\nindex = \"i:*\"\nmember_key = \"o:{member}\"\nreindex = true\nobject_pattern = \"o:*\"\n",
            "integrity.rules[0].reindex: reindex needs a single index",
        ),
        (
            "[[integrity.rules]]\nindex = \"i\"\nmember_key = \"o:{member}\"\nbogus = 1\n",
            "integrity.rules[0].bogus: unknown field `bogus`",
        ),
        (
            "[[integrity.rules]]\nindex = \"i\"\nmember_key = \"o:{member}\"\nreindex = true\nobject_pattern = \"o:*\"\nobject_type = \"json\"\n",
            "integrity.rules[0].object_type: \"json\" is not one of string, hash, list, set, zset, stream",
        ),
        (
            "[[integrity.rules]]\nindex = \"i\"\nmember_key = \"o:{member}\"\nobject_type = \"hash\"\n",
            "integrity.rules[0].object_type: only used with reindex = true",
        ),
        (
            "[integrity]\nprune_max_fraction = 1.5\n",
            "integrity.prune_max_fraction: 1.5 is not a fraction in [0, 1]",
        ),
    ];
    for (toml, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        let e = finance_cache_warmer::config::load_from(Some(Path::new(&file)), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}");
    }
    // Rules in a file replace the defaults.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[[integrity.rules]]\nindex = \"mine\"\nmember_key = \"obj:{member}\"\n",
    )
    .unwrap();
    let s = finance_cache_warmer::config::load_from(Some(Path::new(&file)), Vec::new()).unwrap();
    assert_eq!(s.integrity.rules.len(), 1);
    assert_eq!(Settings::defaults().unwrap().integrity.rules.len(), 3);
}

/// Positions indexed by id, with `reindex` on.
const REINDEX: &str = r#"
[integrity]
grace = "0s"
[[integrity.rules]]
index = "finance:positions:index"
member_key = "finance:position:{member}"
reindex = true
object_pattern = "finance:position:*"
"#;

#[tokio::test]
async fn reindex_adds_only_objects_of_the_rules_type() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .sadd("finance:positions:index", "42")
        .set("finance:position:42", "{}")
        .rpush("finance:position:42:history", "opened")
        .set("finance:position:43", "{}")
        .query_async(&mut c)
        .await
        .unwrap();
    let (code, err) = once(&server, REINDEX, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(summary(&err, "integrity")["reindexed"].as_u64(), Some(1));
    // A list under the pattern is not position "42:history"; a hash rule would take hashes.
    assert_eq!(
        members(&mut c, "finance:positions:index").await,
        set_of(&[b"42", b"43"])
    );
    let _: () = c.hset("finance:position:44", "qty", "1").await.unwrap();
    let (code, err) = once(&server, &format!("{REINDEX}object_type = \"hash\"\n"), &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        members(&mut c, "finance:positions:index").await,
        set_of(&[b"42", b"43", b"44"])
    );
}

#[tokio::test]
async fn reindex_waits_out_the_grace_and_skips_an_object_deleted_meanwhile() {
    let server = redis().await;
    let mut c = conn(&server).await;
    // 45 and 46 are unindexed; the app is deleting 46 (id out of the index first, then the object).
    let _: () = redis::pipe()
        .set("finance:position:45", "{}")
        .set("finance:position:46", "{}")
        .query_async(&mut c)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, REINDEX.replace("grace = \"0s\"", "grace = \"2s\"")).unwrap();
    let mut child = tokio::process::Command::from(fcw())
        .arg("-c")
        .arg(&file)
        .args(["once", "integrity"])
        .env("FCW_REDIS__URL", server.url())
        .env("FCW_LOG__FORMAT", "json")
        .env(
            "FCW_LOG__LEVEL",
            "info,finance_cache_warmer::jobs::integrity=debug",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let started = Instant::now();
    // Both are suspects as soon as the scan has seen them ...
    while seen
        .iter()
        .filter(|l: &&String| l.contains("re-added after the grace"))
        .count()
        < 2
    {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a log line")
            .unwrap()
            .expect("the run is still going");
        seen.push(line);
    }
    // ... and the app finishes deleting 46 within the grace.
    let _: () = c.del("finance:position:46").await.unwrap();
    while let Some(line) = lines.next_line().await.unwrap() {
        seen.push(line);
    }
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the grace was waited out"
    );
    assert_eq!(
        members(&mut c, "finance:positions:index").await,
        set_of(&[b"45"])
    );
    assert_eq!(
        summary(&seen.join("\n"), "integrity")["reindexed"].as_u64(),
        Some(1)
    );
}

#[tokio::test]
async fn prune_unwatched_refuses_to_empty_the_cache() {
    let server = redis().await;
    let mut c = conn(&server).await;
    let _: () = redis::pipe()
        .set("finance:cache:stock:AAPL", "{}")
        .set("finance:cache:stock:MSFT", "{}")
        .set("finance:cache:options:MSFT", "{}")
        .query_async(&mut c)
        .await
        .unwrap();
    let prune = format!("{NO_GRACE}prune_unwatched = true\n");
    let cached = async |c: &mut redis::aio::MultiplexedConnection| -> usize {
        let keys: Vec<String> = c.keys("finance:cache:*").await.unwrap();
        keys.len()
    };
    // No watchlist at all, then one with nothing valid in it: nothing is pruned.
    for watchlist in [None, Some("not a ticker!")] {
        if let Some(member) = watchlist {
            let _: () = c.sadd("finance:watchlist", member).await.unwrap();
        }
        let (code, err) = once(&server, &prune, &[]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(summary(&err, "integrity")["pruned"].as_u64(), Some(0));
        assert_eq!(
            log_lines(&err, "not pruning: the watchlist holds no valid ticker, and pruning would delete every cached value").len(),
            1,
            "{err}"
        );
        assert_eq!(cached(&mut c).await, 3);
    }
    // Watching AAPL only would delete 2 of 3 cache keys: over the default half, skipped ...
    let _: () = c.sadd("finance:watchlist", "AAPL").await.unwrap();
    let (code, err) = once(&server, &prune, &[]);
    assert_eq!(code, Some(0), "{err}");
    let skipped = log_lines(
        &err,
        "not pruning: it would delete more than integrity.prune_max_fraction of the cache keys",
    );
    assert_eq!(
        (
            skipped[0]["would_delete"].as_u64(),
            skipped[0]["cache_keys"].as_u64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(cached(&mut c).await, 3);
    // ... and done when the operator allows that much.
    let (code, err) = once(&server, &format!("{prune}prune_max_fraction = 0.7\n"), &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(summary(&err, "integrity")["pruned"].as_u64(), Some(2));
    assert_eq!(cached(&mut c).await, 1);
}
