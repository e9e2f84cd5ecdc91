//! Secrets and the URLs that may carry them: never shown by `Debug`, `Display` or `Serialize`.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::values::KeyProblem;

/// Fills `value` from `file` when the `<key>_file` form is used; both at once is a mistake, not a
/// silent precedence rule. A relative path names a systemd credential when
/// `$CREDENTIALS_DIRECTORY` is set.
pub(super) fn resolve_secret(
    value: &mut Option<Secret>,
    file: &Option<PathBuf>,
    key: &str,
    credentials: Option<&Path>,
) -> Result<(), KeyProblem> {
    let Some(path) = file else { return Ok(()) };
    let path = match credentials {
        Some(dir) if path.is_relative() => &dir.join(path),
        _ => path,
    };
    let file_key = format!("{key}_file");
    if value.is_some() {
        return Err((
            file_key,
            format!("both {key} and {key}_file are set; keep one"),
        ));
    }
    *value = Some(read_secret_file(path).map_err(|m| (file_key, m))?);
    Ok(())
}

/// Reads a secret from a file such as a systemd credential or a Kubernetes Secret mount.
/// One trailing newline (what `echo` and most editors add) is not part of the secret.
pub(super) fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(value))
}

/// A secret string (password, API key): `Debug` and `Serialize` show `***`, never the value.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: &str) -> Self {
        Secret(SecretString::from(value))
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        if value.is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(Secret::new(&value))
    }
}

/// A Redis URL (`redis://` or `rediss://`) whose password is never displayed.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(url::Url);

impl RedisUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw)
            .map_err(|e| format!("invalid Redis URL {:?}: {e}", redact_url_text(raw)))?;
        let shown = RedisUrl(url);
        match shown.0.scheme() {
            "redis" | "rediss" => {}
            other => {
                return Err(format!(
                    "{shown}: scheme must be redis:// or rediss://, not {other}://"
                ));
            }
        }
        if shown.0.host_str().is_none_or(str::is_empty) {
            return Err(format!("{shown}: no host"));
        }
        let db = shown.0.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(format!(
                "{shown}: the path must be a database number, not {db:?}"
            ));
        }
        Ok(shown)
    }

    /// The URL with its password, for the Redis client only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_tls(&self) -> bool {
        self.0.scheme() == "rediss"
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!(
            "{}:{}",
            self.0.host_str().unwrap_or_default(),
            self.0.port().unwrap_or(6379)
        )
    }

    /// The ACL user in the URL, if any.
    pub fn username(&self) -> Option<&str> {
        Some(self.0.username()).filter(|u| !u.is_empty())
    }
}

/// Masks `user:password@` in a string that did not even parse as a URL.
pub(super) fn redact_url_text(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***@{}", &raw[..scheme_end + 3], &raw[at + 1..])
        }
        _ => raw.to_owned(),
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            // Setting a password on a URL that already has one cannot fail.
            let _ = shown.set_password(Some("***"));
        }
        f.write_str(shown.as_str())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        RedisUrl::parse(&raw).map_err(serde::de::Error::custom)
    }
}
