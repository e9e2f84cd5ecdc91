//! The Redis key schema. No other module formats a key string, so this file is the whole list of
//! what the daemon reads and writes: the cache keys, its locks (`finance:lock:*`) and its own
//! bookkeeping (`finance:warmer:*`). It never uses `KEYS`; enumeration is `SSCAN`/`SCAN`.

use std::fmt;

use crate::ticker::Ticker;

/// The placeholder in an integrity rule's `member_key` that stands for the member.
pub const MEMBER_PLACEHOLDER: &str = "{member}";

/// The set of ticker symbols the app wants warm (read with `SSCAN`).
pub const WATCHLIST: &str = "finance:watchlist";

/// The stream of warm requests the app adds to (`XADD ... ticker T`), read by a consumer group.
pub const REQUESTS: &str = "finance:warmer:requests";

/// The three kinds of cached value, one key per kind and ticker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheKind {
    Stock,
    Options,
    Earnings,
}

impl CacheKind {
    pub const ALL: [CacheKind; 3] = [CacheKind::Stock, CacheKind::Options, CacheKind::Earnings];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Stock => "stock",
            CacheKind::Options => "options",
            CacheKind::Earnings => "earnings",
        }
    }
}

impl fmt::Display for CacheKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `finance:cache:{kind}:{TICKER}`, e.g. `finance:cache:stock:AAPL`.
pub fn cache(kind: CacheKind, ticker: &Ticker) -> String {
    format!("finance:cache:{}:{}", kind.as_str(), ticker.as_str())
}

/// `SCAN MATCH` pattern of every cache key.
pub const CACHE_PATTERN: &str = "finance:cache:*";

/// The kind and ticker of a cache key, if it is one of ours (`finance:cache:stock:AAPL`).
pub fn parse_cache(key: &[u8]) -> Option<(CacheKind, Ticker)> {
    let rest = key.strip_prefix(b"finance:cache:")?;
    let colon = rest.iter().position(|b| *b == b':')?;
    let (kind, ticker) = (&rest[..colon], &rest[colon + 1..]);
    let kind = CacheKind::ALL
        .into_iter()
        .find(|k| k.as_str().as_bytes() == kind)?;
    let ticker = Ticker::parse(ticker).ok()?;
    // Only the exact key we would write: `finance:cache:stock:aapl` is not ours.
    (ticker.as_str().as_bytes() == &rest[colon + 1..]).then_some((kind, ticker))
}

/// An integrity rule's `member_key` template (`finance:position:{member}`), split around the
/// placeholder. Members are arbitrary bytes and are substituted literally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberKey {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl MemberKey {
    /// `template` must contain `{member}` once (the config checks it).
    pub fn parse(template: &str) -> MemberKey {
        let (prefix, suffix) = template
            .split_once(MEMBER_PLACEHOLDER)
            .unwrap_or((template, ""));
        MemberKey {
            prefix: prefix.as_bytes().to_vec(),
            suffix: suffix.as_bytes().to_vec(),
        }
    }

    /// The object key `member` points to.
    pub fn key(&self, member: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), member, self.suffix.as_slice()].concat()
    }

    /// What comes before the member in an object key.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// What comes after the member in an object key.
    pub fn suffix(&self) -> &[u8] {
        &self.suffix
    }

    /// The member an object key stands for, if the key fits the template.
    pub fn member<'a>(&self, key: &'a [u8]) -> Option<&'a [u8]> {
        let inner = key
            .strip_prefix(self.prefix.as_slice())?
            .strip_suffix(self.suffix.as_slice())?;
        (!inner.is_empty()).then_some(inner)
    }
}

/// `finance:warmer:run:{job}`: the hash recording the job's last run and last success, which
/// `status` reads. One per job, overwritten by each run.
pub fn run_record(job: &str) -> String {
    format!("finance:warmer:run:{job}")
}

/// The lock a run of `job` holds (`finance:lock:job:stock`); a sharded run locks its shard only
/// (`finance:lock:job:stock:shard:2-of-8`), so shards run in parallel but each once.
pub fn job_lock(job: &str, shard: Option<(u32, u32)>) -> String {
    match shard {
        None => format!("finance:lock:job:{job}"),
        Some((index, count)) => format!("finance:lock:job:{job}:shard:{index}-of-{count}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_match_what_the_app_reads() {
        let t: Ticker = "brk-b".parse().unwrap();
        assert_eq!(cache(CacheKind::Stock, &t), "finance:cache:stock:BRK-B");
        assert_eq!(cache(CacheKind::Options, &t), "finance:cache:options:BRK-B");
        assert_eq!(
            cache(CacheKind::Earnings, &t),
            "finance:cache:earnings:BRK-B"
        );
    }

    #[test]
    fn lock_keys_name_the_job_and_shard() {
        assert_eq!(job_lock("stock", None), "finance:lock:job:stock");
        assert_eq!(run_record("stock"), "finance:warmer:run:stock");
        assert_eq!(
            job_lock("options", Some((2, 8))),
            "finance:lock:job:options:shard:2-of-8"
        );
    }

    #[test]
    fn cache_keys_parse_back_and_nothing_else_does() {
        assert_eq!(
            parse_cache(b"finance:cache:options:BRK-B"),
            Some((CacheKind::Options, "BRK-B".parse().unwrap()))
        );
        for other in [
            &b"finance:cache:stock:aapl"[..],
            b"finance:cache:news:AAPL",
            b"finance:cache:stock:",
            b"finance:position:1",
            b"finance:cache:stock:A B",
        ] {
            assert_eq!(
                parse_cache(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn member_keys_substitute_bytes_literally() {
        let t = MemberKey::parse("finance:position:{member}");
        assert_eq!(t.key(b"42"), b"finance:position:42");
        assert_eq!(
            t.key(b"a*{b} \n\xff"),
            b"finance:position:a*{b} \n\xff".to_vec()
        );
        assert_eq!(t.member(b"finance:position:42"), Some(&b"42"[..]));
        assert_eq!(t.member(b"finance:positions:index"), None);
        let wrapped = MemberKey::parse("obj:{member}:data");
        assert_eq!(wrapped.key(b"x"), b"obj:x:data");
        assert_eq!(wrapped.member(b"obj:x:data"), Some(&b"x"[..]));
    }
}
