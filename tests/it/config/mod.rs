//! Configuration: layering, rejection of mistakes with the key path, and secret redaction.

mod layers;
mod secrets;
mod values;

use crate::support;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use finance_cache_warmer::config::{self, ConfigError, LogFormat, Settings};
use support::{fcw, run};

fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    vars.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_err(file: Option<&Path>, vars: &[(&str, &str)]) -> String {
    match config::load_from(file, env(vars)) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}
