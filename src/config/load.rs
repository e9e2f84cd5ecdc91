//! Loading: the defaults, a file and the environment merged in layers, remembering where each
//! value came from so an error can name it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::sections::Settings;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "FCW_";
/// systemd sets this to the directory of the service's `LoadCredential=` files.
pub const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";
/// Environment variable naming the config file (also `-c/--config`); not itself a key.
pub const CONFIG_PATH_ENV: &str = "FCW_CONFIG";
/// The documented defaults, which are also the real ones: the file is compiled in.
pub const DEFAULTS_TOML: &str = include_str!("../../config/default.toml");

/// A configuration problem, always naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{key}: {message}{origin}")]
    Invalid {
        key: String,
        message: String,
        origin: Origin,
    },
}

/// Where a value came from, so an error can point at the line an operator must change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    #[default]
    Default,
    File(PathBuf),
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => Ok(()),
            Origin::File(path) => write!(f, " (in {})", path.display()),
            Origin::Env(var) => write!(f, " (from environment variable {var})"),
        }
    }
}

/// Loads the configuration from the process environment and an optional file.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    load_from(path, std::env::vars_os())
}

/// Loads the configuration from an explicit environment (tests pass their own).
pub fn load_from(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Settings, ConfigError> {
    let mut layers = Layers::defaults();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        layers.merge_file(table, path);
    }
    let mut env: Vec<_> = env.into_iter().collect();
    env.sort();
    for (name, value) in env {
        layers.apply_env(&name, &value)?;
    }
    layers.into_settings()
}

impl Settings {
    /// The effective configuration as TOML, every secret shown as `***`.
    pub fn to_redacted_toml(&self) -> String {
        // Serializing plain data (strings, numbers, tables) into TOML cannot fail.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The defaults alone, as the program runs with no file and no environment.
    pub fn defaults() -> Result<Settings, ConfigError> {
        Layers::defaults().into_settings()
    }
}

/// The merged TOML tree plus the origin of every value set above the defaults.
pub(super) struct Layers {
    tree: toml::Table,
    origins: BTreeMap<String, Origin>,
    /// systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`): relative `*_file` paths are
    /// read from it.
    credentials: Option<PathBuf>,
    /// The config file's directory: relative `*_file` paths are read from it outside systemd,
    /// so `status` from a root shell finds the file the service gets as a credential.
    file_dir: Option<PathBuf>,
}

impl Layers {
    fn defaults() -> Self {
        // A syntax error in the compiled-in defaults is a build defect that every test catches.
        let tree = toml::from_str(DEFAULTS_TOML).expect("config/default.toml is valid TOML");
        Layers {
            tree,
            origins: BTreeMap::new(),
            credentials: None,
            file_dir: None,
        }
    }

    fn merge_file(&mut self, file: toml::Table, path: &Path) {
        self.file_dir = path.parent().map(Path::to_owned);
        merge_table(
            &mut self.tree,
            file,
            "",
            &Origin::File(path.to_owned()),
            &mut self.origins,
        );
    }

    fn apply_env(&mut self, name: &OsString, value: &OsString) -> Result<(), ConfigError> {
        let Some(name) = name.to_str() else {
            return Ok(()); // not ours: our variables are ASCII
        };
        if name == CREDENTIALS_ENV {
            self.credentials = Some(PathBuf::from(value));
            return Ok(());
        }
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            return Ok(());
        };
        if name == CONFIG_PATH_ENV {
            return Ok(());
        }
        let origin = Origin::Env(name.to_owned());
        let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let key = segments.join(".");
        let invalid = |message: String| ConfigError::Invalid {
            key: key.clone(),
            message,
            origin: origin.clone(),
        };
        if segments.iter().any(String::is_empty) {
            return Err(invalid("malformed variable name".into()));
        }
        let Some(value) = value.to_str() else {
            return Err(invalid("value is not valid UTF-8".into()));
        };
        let (leaf, parents) = segments.split_last().expect("split yields one segment");
        let mut table = &mut self.tree;
        for (i, segment) in parents.iter().enumerate() {
            let entry = table
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(invalid(format!(
                        "`{}` is not a section",
                        segments[..=i].join(".")
                    )));
                }
            };
        }
        let typed = coerce_env(value, table.get(leaf)).map_err(invalid)?;
        table.insert(leaf.clone(), typed);
        self.origins.insert(key, origin);
        Ok(())
    }

    fn into_settings(self) -> Result<Settings, ConfigError> {
        let Layers {
            tree,
            origins,
            credentials,
            file_dir,
        } = self;
        // The layer that set `key` or the nearest table above it. Arrays are set whole, so
        // `provider.stock[0]` is `provider.stock`'s; a key missing from a table belongs to the
        // layer that set something in that table.
        let origin_of = |key: &str| -> Origin {
            let whole = &key[..key.find('[').unwrap_or(key.len())];
            let mut key = whole;
            loop {
                if let Some(origin) = origins.get(key) {
                    return origin.clone();
                }
                match key.rfind('.') {
                    Some(dot) => key = &key[..dot],
                    None => break,
                }
            }
            let inside = format!("{whole}.");
            origins
                .iter()
                .find(|(k, _)| whole.is_empty() || k.starts_with(&inside))
                .map(|(_, origin)| origin.clone())
                .unwrap_or_default()
        };
        let mut settings: Settings = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                origin: origin_of(&key),
                message: e.into_inner().message().to_owned(),
                key,
            }
        })?;
        settings
            .resolve_secrets(credentials.or(file_dir).as_deref())
            .map_err(|(key, message)| {
                let origin = origin_of(&key);
                ConfigError::Invalid {
                    key,
                    message,
                    origin,
                }
            })?;
        let url_set = origins.contains_key("redis.url");
        let checked = settings
            .validate_redis_target(url_set)
            .and_then(|()| settings.validate());
        checked.map_err(|(key, message)| {
            let origin = origin_of(&key);
            ConfigError::Invalid {
                key,
                message,
                origin,
            }
        })?;
        Ok(settings)
    }
}

/// Tables merge key by key; anything else (including arrays) is replaced whole.
pub(super) fn merge_table(
    base: &mut toml::Table,
    over: toml::Table,
    prefix: &str,
    origin: &Origin,
    origins: &mut BTreeMap<String, Origin>,
) {
    for (k, v) in over {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                merge_table(b, o, &path, origin, origins)
            }
            (_, v) => {
                origins.insert(path, origin.clone());
                base.insert(k, v);
            }
        }
    }
}

/// Environment values are strings; give them the type of the value they replace, so
/// `FCW_JOBS__STOCK__ENABLED=false` is a boolean while a numeric-looking password stays a string.
pub(super) fn coerce_env(raw: &str, current: Option<&toml::Value>) -> Result<toml::Value, String> {
    use toml::Value;
    let expected = |what: &str| format!("expected {what}, got {raw:?}");
    Ok(match current {
        None | Some(Value::String(_)) => Value::String(raw.to_owned()),
        Some(Value::Integer(_)) => {
            Value::Integer(raw.trim().parse().map_err(|_| expected("an integer"))?)
        }
        Some(Value::Float(_)) => {
            Value::Float(raw.trim().parse().map_err(|_| expected("a number"))?)
        }
        Some(Value::Boolean(_)) => {
            Value::Boolean(raw.trim().parse().map_err(|_| expected("true or false"))?)
        }
        Some(Value::Array(_)) => {
            let trimmed = raw.trim();
            if trimmed.starts_with('[') {
                let table: toml::Table = toml::from_str(&format!("v = {trimmed}"))
                    .map_err(|_| expected("a TOML array"))?;
                table
                    .get("v")
                    .cloned()
                    .ok_or_else(|| expected("a TOML array"))?
            } else {
                Value::Array(
                    trimmed
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                )
            }
        }
        Some(Value::Table(_)) => return Err("is a section; set its keys instead".into()),
        Some(Value::Datetime(_)) => Value::String(raw.to_owned()),
    })
}
