//! The warming jobs end to end: the real binary, a real `redis-server` per test, and a local
//! HTTP upstream serving recorded Yahoo answers.

mod daemon;
mod demo;
mod once;

use crate::support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use finance_cache_warmer::local_redis::LocalRedis;
use finance_cache_warmer::ticker::Ticker;
use finance_cache_warmer::watchlist::Shard;
use redis::AsyncCommands;
use support::{
    RecordedQuotes, assert_schema, assert_ttl, conn, eventually, fcw, fixture, log_lines, redis,
    summary, watchlist, yahoo,
};
use wiremock::{MockServer, ResponseTemplate};

fn recorded(file: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(file), "application/json")
}

/// The binary configured for `redis` and a Yahoo upstream at `upstream`, logging JSON.
fn once(redis: &LocalRedis, upstream: &MockServer, args: &[&str]) -> std::process::Command {
    let mut cmd = fcw();
    cmd.arg("once").args(args);
    for (k, v) in env(redis, upstream) {
        cmd.env(k, v);
    }
    cmd
}

fn env(redis: &LocalRedis, upstream: &MockServer) -> Vec<(&'static str, String)> {
    vec![
        ("FCW_REDIS__URL", redis.url()),
        ("FCW_PROVIDER__YAHOO__BASE_URL", upstream.uri()),
        (
            "FCW_PROVIDER__YAHOO__COOKIE_URL",
            format!("{}/cookie", upstream.uri()),
        ),
        ("FCW_PROVIDER__YAHOO__REQUESTS_PER_SECOND", "0".into()),
        ("FCW_PROVIDER__MAX_RETRIES", "0".into()),
        ("FCW_LOG__FORMAT", "json".into()),
        ("FCW_SERVER__LISTEN", String::new()),
    ]
}

/// Wednesday 2 December 2026, 11:00 New York: mid-session, so quotes get `ttl.open` (10 min).
const MID_SESSION: &str = "2026-12-02T16:00:00Z";
/// The same day at 22:00 New York: closed, so quotes get `ttl.closed` (1 h).
const OVERNIGHT: &str = "2026-12-03T03:00:00Z";

async fn quote_requests(upstream: &MockServer) -> usize {
    upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v7/finance/quote")
        .count()
}
