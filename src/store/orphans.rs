//! The integrity job's walk of an index on a single server: one script per page runs the
//! `SSCAN` and the `EXISTS` of each member's object on the server and answers with only the
//! members whose object is missing.
//!
//! One round trip per page instead of an `SSCAN` and a pipeline of `EXISTS`: the members never
//! travel to the daemon and back as object keys, and the server parses no `EXISTS` commands.
//! A script blocks the server while it runs, so a page is capped at [`SCRIPT_PAGE_MAX`].

use std::sync::LazyLock;

use redis::Script;

use super::error::StoreError;
use super::handle::Store;
use crate::keys::MemberKey;

/// Members a page asks `SSCAN` for at most, whatever `integrity.scan_count` says.
///
/// The budget is 2 ms of server time per call, a fifth of what Redis itself logs as slow
/// (`slowlog-log-slower-than`, 10 ms): other clients wait behind a running script. Measured on 2
/// cores of an AMD EPYC (Redis 7.0, `INFO commandstats` and `SLOWLOG`, a hashtable set of
/// 1,000,000 members, 10 % of them orphans), a call at 250 costs 0.6 to 1.1 ms, at 500 about
/// twice that (see docs/performance.md).
pub const SCRIPT_PAGE_MAX: u32 = 250;

/// Members one call checks at most. `SSCAN` on a hashtable returns about `COUNT` members (a few
/// more, more while the set is rehashing), but a set in a compact encoding (`intset`,
/// `listpack`) whole: 512 members at most with Redis's defaults (`set-max-intset-entries`),
/// about 1 ms, but any number with a raised limit. A page above this is handed back unchecked,
/// for the daemon to check with pipelined `EXISTS`.
const SCRIPT_CHECK_MAX: u32 = 512;

/// KEYS: the index. ARGV: cursor, `COUNT`, the object key's prefix and suffix (the member goes
/// between them), the most members to check. Returns the next cursor, how many members the
/// page held, and either the missing members (then 1) or, on a page over the limit, every member
/// unchecked (then 0).
///
/// The object keys are built in the script, not declared in KEYS: Redis ACLs treat every
/// declared key as written, and the daemon only reads objects (see `guarded_change` in `sets.rs`). Scripts
/// run on a single server only, where undeclared keys are no routing problem.
const SCAN_MISSING: &str = r"
local page = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local members = page[2]
if #members > tonumber(ARGV[5]) then
  return {page[1], #members, members, 0}
end
local prefix, suffix = ARGV[3], ARGV[4]
local missing = {}
for i = 1, #members do
  if redis.call('EXISTS', prefix .. members[i] .. suffix) == 0 then
    missing[#missing + 1] = members[i]
  end
end
return {page[1], #members, missing, 1}";

static SCAN_MISSING_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SCAN_MISSING));

/// One page of an index, walked by [`Store::scan_missing`].
#[derive(Debug)]
pub struct MissingPage {
    /// The next cursor; 0 when the walk is done.
    pub next: u64,
    /// How many members the page held, missing or not.
    pub held: u64,
    pub members: PageMembers,
}

/// What [`MissingPage`] says about its members.
#[derive(Debug)]
pub enum PageMembers {
    /// The members whose object is missing (the others exist).
    Missing(Vec<Vec<u8>>),
    /// Every member of a page too big to check in one script, none of them checked.
    Unchecked(Vec<Vec<u8>>),
}

impl Store {
    /// One page of `index` from `cursor` (`SSCAN ... COUNT count`, `count` capped at
    /// [`SCRIPT_PAGE_MAX`]) with the members whose object (`template`) is missing, in one
    /// script call. Read-only, so retried like a read. Single server only: a cluster keeps the
    /// index and the objects on different nodes.
    pub async fn scan_missing(
        &self,
        what: &'static str,
        index: &[u8],
        cursor: u64,
        count: u32,
        template: &MemberKey,
    ) -> Result<MissingPage, StoreError> {
        let count = count.clamp(1, SCRIPT_PAGE_MAX);
        let (next, held, members, checked): (u64, u64, Vec<Vec<u8>>, u8) = self
            .retry(what, |mut conn| {
                let mut invocation = SCAN_MISSING_SCRIPT.key(index);
                invocation
                    .arg(cursor)
                    .arg(count)
                    .arg(template.prefix())
                    .arg(template.suffix())
                    .arg(SCRIPT_CHECK_MAX);
                // `invoke_async` loads the script when the server lost it (a restart, a
                // failover) and sends it again.
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        let members = if checked == 1 {
            PageMembers::Missing(members)
        } else {
            PageMembers::Unchecked(members)
        };
        Ok(MissingPage {
            next,
            held,
            members,
        })
    }
}
