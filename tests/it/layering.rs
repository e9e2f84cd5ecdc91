//! The layering, read from the source: which file imports which (`crate::`, `super::` and child
//! module paths), and the rules: no import cycle between files, market time (`calendar`, `ttl`)
//! on nothing of ours but itself, `metrics` a leaf, `store` below every job, provider and
//! command and the only file speaking to Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// `src/jobs/warm.rs` -> `jobs::warm`, `src/provider/mod.rs` -> `provider`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(SRC).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and without its `#[cfg(test)] mod tests` (tests may reach
/// anywhere).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths of a `{a, b::c, d::{e, f}}` group, each prefixed with `prefix`.
fn expand(prefix: &str, group: &str, out: &mut Vec<String>) {
    let (mut depth, mut item) = (0, String::new());
    let mut items = Vec::new();
    for ch in group.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            items.push(std::mem::take(&mut item));
        } else {
            item.push(ch);
        }
    }
    items.push(item);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let join = |rest: &str| match prefix {
            "" => rest.to_owned(),
            p => format!("{p}::{rest}"),
        };
        match item.split_once("::{") {
            Some((head, rest)) => expand(&join(head), rest.strip_suffix('}').unwrap(), out),
            None => out.push(join(item.split(" as ").next().unwrap().trim())),
        }
    }
}

/// Every `a::b::c` path (or `{...}` group) that follows `marker` in `code`.
fn paths_after(code: &str, marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(marker) {
        if code[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let rest = &code[at + marker.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            expand("", &group[..end], &mut out);
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let path = path.trim_end_matches(':');
        if let Some(group) = rest[path.len()..].strip_prefix("::{") {
            let end = matching_brace(group);
            expand(path, &group[..end], &mut out);
        } else {
            out.push(path.to_owned());
        }
    }
    out
}

fn matching_brace(after_open: &str) -> usize {
    let mut depth = 1;
    for (i, ch) in after_open.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    after_open.len()
}

/// Which module of ours a path names: its longest prefix that is a module.
fn resolve<'a>(path: &str, modules: &'a BTreeSet<String>) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").filter(|p| *p != "self").collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| modules.get(&parts[..n].join("::")))
}

/// Each module and the modules of ours it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(Path::new(SRC), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let me = module_of(file);
        if me == "main" || me == "lib" {
            continue;
        }
        let code = code(&std::fs::read_to_string(file).unwrap());
        let parent = me.rsplit_once("::").map(|(p, _)| p.to_owned());
        let mut paths = paths_after(&code, "crate::");
        for p in paths_after(&code, "super::") {
            paths.push(match &parent {
                Some(parent) => format!("{parent}::{p}"),
                None => p,
            });
        }
        // A parent naming its child module: `warm::WarmJob`.
        for child in modules
            .iter()
            .filter_map(|m| m.strip_prefix(&format!("{me}::")))
        {
            if !child.contains("::") && !paths_after(&code, &format!("{child}::")).is_empty() {
                paths.push(format!("{me}::{child}"));
            }
        }
        let deps: BTreeSet<String> = paths
            .iter()
            .filter_map(|p| resolve(p, &modules))
            .filter(|m| **m != me)
            .cloned()
            .collect();
        graph.insert(me, deps);
    }
    graph
}

/// An import cycle, if there is one: the modules on it, in order.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            return Some(path[at..].to_vec());
        }
        if !done.insert(m.to_owned()) {
            return None;
        }
        path.push(m.to_owned());
        for dep in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(dep, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_import_cycle_between_source_files() {
    let graph = graph();
    assert!(graph.contains_key("jobs::warm") && graph["jobs::warm"].contains("jobs::job"));
    assert_eq!(cycle(&graph), None, "an import cycle");
}

#[test]
fn imports_follow_the_layers() {
    let graph = graph();
    let deps = |m: &str| graph.get(m).unwrap_or_else(|| panic!("no module {m}"));
    // Market time depends on nothing of ours but itself: the start-up code hands it values.
    let in_calendar = |d: &String| d == "calendar" || d.starts_with("calendar::");
    let calendar_files: Vec<&String> = graph.keys().filter(|m| in_calendar(m)).collect();
    assert!(calendar_files.len() >= 3, "{calendar_files:?}");
    for module in calendar_files {
        assert!(
            deps(module).iter().all(in_calendar),
            "{module}: {:?}",
            deps(module)
        );
    }
    assert!(deps("ttl").iter().all(in_calendar), "{:?}", deps("ttl"));
    // Which market a ticker is on knows calendars and the provider's metadata, nothing else.
    assert!(
        deps("market")
            .iter()
            .all(|d| in_calendar(d) || d == "model"),
        "{:?}",
        deps("market")
    );
    // Metrics are a leaf: callers record their own facts with plain values.
    assert!(deps("metrics").is_empty(), "{:?}", deps("metrics"));
    // The store (every file of it) is below every job, provider and command.
    let store_files = graph
        .iter()
        .filter(|(m, _)| *m == "store" || m.starts_with("store::"));
    for (module, imports) in store_files {
        for dep in imports.iter().filter(|d| !d.starts_with("store")) {
            for above in [
                "jobs",
                "provider",
                "commands",
                "runner",
                "scheduler",
                "requests",
                "status",
            ] {
                assert!(
                    dep != above && !dep.starts_with(&format!("{above}::")),
                    "{module} imports {dep}"
                );
            }
        }
    }
    // Warm requests, like the scheduler, only ask the runner to run jobs: they know no job's
    // insides, and nothing below them knows of them.
    assert!(
        deps("requests")
            .iter()
            .all(|d| !d.starts_with("jobs::") && !d.starts_with("provider")),
        "{:?}",
        deps("requests")
    );
    for (module, imports) in &graph {
        let inside = module == "requests" || module.starts_with("requests::");
        if !inside && !module.starts_with("commands") && module != "lib" {
            assert!(!imports.contains("requests"), "{module} imports requests");
        }
    }
    // What a run shows a person and the scheduler's heartbeat know nothing of jobs.
    for leaf in ["progress", "health"] {
        assert!(
            deps(leaf).iter().all(|d| d.starts_with("config")),
            "{leaf}: {:?}",
            deps(leaf)
        );
    }
}

/// Whether `code` says `redis::` (the driver), not merely a path ending in it (`local_redis::`).
fn names_the_driver(code: &str) -> bool {
    code.match_indices("redis::").any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Every Redis command is the store's: no other file names the driver (a private
/// `redis-server` child for `demo` and the tests is only a process).
#[test]
fn only_the_store_speaks_to_redis() {
    let mut files = Vec::new();
    sources(Path::new(SRC), &mut files);
    let store_dir = Path::new(SRC).join("store");
    let speaking: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(&store_dir))
        .filter(|f| names_the_driver(&code(&std::fs::read_to_string(f).unwrap())))
        .map(|f| module_of(f))
        .collect();
    assert!(
        files.iter().any(|f| f.starts_with(&store_dir)),
        "the store is a folder"
    );
    assert_eq!(
        speaking,
        Vec::<String>::new(),
        "Redis commands outside store"
    );
}

#[test]
fn the_reader_sees_through_groups_and_comments() {
    let code = code("use crate::a::{b, c::{d, e as f}};\n// crate::nope\nlet x = super::g::h();");
    assert_eq!(
        paths_after(&code, "crate::"),
        ["a::b", "a::c::d", "a::c::e"]
    );
    assert_eq!(paths_after(&code, "super::"), ["g::h"]);
    assert!(names_the_driver("let c = redis::cmd(\"GET\");"));
    assert!(!names_the_driver("use crate::local_redis::LocalRedis;"));
}
