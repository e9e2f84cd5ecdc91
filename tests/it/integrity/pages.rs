//! Pages of an index checked on the server, one script call each: every member covered, live
//! ones kept, whatever their bytes, the member-key template or the set's encoding.

use std::collections::HashSet;

use redis::AsyncCommands;

use super::{NO_GRACE, members, once};
use crate::support::{commands_sent, conn, log_every_command, redis, summary};

#[tokio::test]
async fn pages_checked_on_the_server_keep_live_members_whatever_the_bytes_and_the_suffix() {
    let server = redis().await;
    let mut c = conn(&server).await;
    // 3,000 members in a hashtable set (not all integers), every third one an orphan, with
    // bytes a script could mangle; the object key has a suffix too.
    let member = |i: usize| -> Vec<u8> {
        match i % 4 {
            0 => format!("{i}").into_bytes(),
            1 => format!("id {i}\n*").into_bytes(),
            2 => [b"\xff\x00".as_slice(), i.to_string().as_bytes(), b"\r\n"].concat(),
            _ => format!("{{{i}}}'\"..").into_bytes(),
        }
    };
    let all: Vec<Vec<u8>> = (0..3000).map(member).collect();
    let live: HashSet<Vec<u8>> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, m)| m.clone())
        .collect();
    let mut pipe = redis::pipe();
    pipe.sadd("obj:index", &all).ignore();
    for m in &live {
        pipe.set([b"obj:".as_slice(), m, b":data"].concat(), "{}")
            .ignore();
    }
    // Keys next to an orphan's object key that must not make it look alive.
    pipe.set(b"obj:0:data:x".as_slice(), "{}").ignore();
    pipe.set(b"obj:0:dat".as_slice(), "{}").ignore();
    let _: () = pipe.query_async(&mut c).await.unwrap();
    log_every_command(&mut c).await;
    // scan_count far above what one script call may check: every member is checked anyway,
    // in pages of at most SCRIPT_PAGE_MAX.
    let config = r#"
[integrity]
grace = "0s"
scan_count = 5000
[[integrity.rules]]
index = "obj:index"
member_key = "obj:{member}:data"
"#;
    let (code, err) = once(&server, config, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(members(&mut c, "obj:index").await, live);
    let s = summary(&err, "integrity");
    assert_eq!(
        (
            s["checked"].as_u64(),
            s["orphans"].as_u64(),
            s["removed"].as_u64()
        ),
        (Some(3000), Some(1000), Some(1000)),
        "{s}"
    );
    // Each page was one script call, SSCAN and EXISTS inside, at most SCRIPT_PAGE_MAX members:
    // the daemon sent no SSCAN or EXISTS of its own.
    let sent = commands_sent(&mut c).await;
    let name = |args: &Vec<Vec<u8>>| String::from_utf8_lossy(&args[0]).to_uppercase();
    assert!(
        !sent
            .iter()
            .any(|a| ["SSCAN", "EXISTS"].contains(&name(a).as_str())),
        "{:?}",
        sent.iter().map(name).collect::<Vec<_>>()
    );
    // EVALSHA sha 1 index cursor count prefix suffix limit
    let pages: Vec<&Vec<Vec<u8>>> = sent
        .iter()
        .filter(|a| name(a) == "EVALSHA" && a.len() == 9)
        .collect();
    let bound = finance_cache_warmer::store::SCRIPT_PAGE_MAX;
    assert!(
        pages.len() as u32 >= 3000 / (bound + bound / 10),
        "{sent:?}"
    );
    assert!(
        pages.iter().all(|a| a[5] == bound.to_string().as_bytes()),
        "COUNT clamped to {bound}"
    );
}

#[tokio::test]
async fn a_compact_set_too_big_for_one_script_call_is_checked_by_the_daemon() {
    let server = redis().await;
    let mut c = conn(&server).await;
    // An intset returns all its members in one SSCAN page, whatever the COUNT.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("set-max-intset-entries")
        .arg(10_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let ids: Vec<u32> = (0..5000).collect();
    let mut pipe = redis::pipe();
    pipe.sadd("finance:positions:index", &ids).ignore();
    for id in ids.iter().filter(|id| *id % 5 != 0) {
        pipe.set(format!("finance:position:{id}"), "{}").ignore();
    }
    let _: () = pipe.query_async(&mut c).await.unwrap();
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("finance:positions:index")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(encoding, "intset");
    log_every_command(&mut c).await;
    let (code, err) = once(&server, NO_GRACE, &[]);
    assert_eq!(code, Some(0), "{err}");
    let s = summary(&err, "integrity");
    assert_eq!(
        (
            s["checked"].as_u64(),
            s["orphans"].as_u64(),
            s["removed"].as_u64()
        ),
        (Some(5000), Some(1000), Some(1000)),
        "{s}"
    );
    // The script handed the page back unchecked: the daemon sent the EXISTS itself.
    let sent = commands_sent(&mut c).await;
    let exists = sent.iter().filter(|a| a[0].eq_ignore_ascii_case(b"EXISTS"));
    assert_eq!(exists.count(), 5000);
    let left: HashSet<u32> = c.smembers("finance:positions:index").await.unwrap();
    assert_eq!(left, ids.iter().copied().filter(|id| id % 5 != 0).collect());
}
