//! Recorded upstream answers and the JSON Schemas of what the cache holds.

use std::path::Path;

/// A recorded response body from `tests/fixtures/`, byte for byte.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Asserts that `value` matches `schemas/<kind>.schema.json`, formats included.
pub fn assert_schema(kind: &str, value: &serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/{kind}.schema.json"));
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} value does not match its schema: {errors:?}\n{value}"
    );
}

/// The ACL line of docs/redis.md, with the password set.
pub fn readme_acl(password: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/redis.md")).unwrap();
    let block = readme
        .split("<!-- acl-begin -->")
        .nth(1)
        .unwrap()
        .split("<!-- acl-end -->")
        .next()
        .unwrap();
    let line = block
        .lines()
        .find(|l| l.starts_with("ACL SETUSER"))
        .expect("the ACL line");
    line.split_whitespace()
        .skip(1)
        .map(|t| {
            if t == ">CHANGE-ME" {
                format!(">{password}")
            } else {
                t.to_owned()
            }
        })
        .collect()
}
