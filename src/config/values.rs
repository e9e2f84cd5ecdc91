//! Typed values of the config file: durations, URLs, sizes, fractions, time zones, dates.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A config key and what is wrong with its value.
pub(super) type KeyProblem = (String, String);

/// A duration written as a human string (`"500ms"`, `"10m"`, `"60d"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub const fn new(d: Duration) -> Self {
        HumanDuration(d)
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    /// The shortest exact form in one unit, so the printed config reads like the file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() != 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let s = d.as_secs();
        match s {
            0 => f.write_str("0s"),
            _ if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            _ if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            _ if s % 60 == 0 => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        humantime::parse_duration(raw.trim())
            .map(HumanDuration)
            .map_err(|e| format!("invalid duration {raw:?} ({e}); write e.g. \"500ms\", \"10s\", \"10m\", \"1h\", \"60d\""))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An `http://` or `https://` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub url::Url);

impl Serialize for HttpUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        let url = url::Url::parse(&raw)
            .map_err(|e| serde::de::Error::custom(format!("invalid URL {raw:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(serde::de::Error::custom(format!(
                "{raw:?} is not an http:// or https:// URL"
            )));
        }
        if url.password().is_some() || url.query().is_some() {
            // Not echoed: the query or password is likely a secret.
            return Err(serde::de::Error::custom(
                "a base URL takes no query or password; put credentials in the api_key/token keys, not in the URL",
            ));
        }
        Ok(HttpUrl(url))
    }
}

/// A size in bytes, with a unit (`"8MiB"`, `"512KiB"`, `"1GiB"`) or without (`4096`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => {
                return Err(format!(
                    "invalid size {raw:?}; write e.g. \"512KiB\", \"8MiB\", \"1GiB\""
                ));
            }
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .map(ByteSize)
            .ok_or_else(|| {
                format!("invalid size {raw:?}; write e.g. \"512KiB\", \"8MiB\", \"1GiB\"")
            })
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    /// A string with a unit, or a plain number of bytes (`4096`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A fraction above 0 and at most 10 (`0.2` = 20%), given as a number or, from an environment
/// variable, as text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction(pub f64);

impl Serialize for Fraction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let value = match Raw::deserialize(d)? {
            Raw::Number(n) => n,
            Raw::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number")))?,
        };
        if value > 0.0 && value <= 10.0 {
            Ok(Fraction(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "{value} is not a fraction above 0 and at most 10 (0.2 = 20%)"
            )))
        }
    }
}

/// An IANA time zone name such as `America/New_York`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub chrono_tz::Tz);

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map(Zone).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown time zone {raw:?}; use an IANA name such as \"America/New_York\""
            ))
        })
    }
}

/// A calendar date written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsoDate(pub chrono::NaiveDate);

impl Serialize for IsoDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for IsoDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        chrono::NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
            .map(IsoDate)
            .map_err(|e| {
                serde::de::Error::custom(format!("invalid date {raw:?} ({e}); write YYYY-MM-DD"))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::RedisUrl;
    use crate::config::load::coerce_env;
    use crate::config::secrets::redact_url_text;

    #[test]
    fn durations_print_in_their_shortest_exact_unit_and_parse_back() {
        for (text, secs_ms, shown) in [
            ("500ms", (0, 500), "500ms"),
            ("90s", (90, 0), "90s"),
            ("10m", (600, 0), "10m"),
            ("1h", (3600, 0), "1h"),
            ("60d", (60 * 86_400, 0), "60d"),
            ("1h 30m", (5400, 0), "90m"),
            ("0s", (0, 0), "0s"),
        ] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(
                d.get(),
                Duration::from_secs(secs_ms.0) + Duration::from_millis(secs_ms.1)
            );
            assert_eq!(d.to_string(), shown);
            assert_eq!(shown.parse::<HumanDuration>().unwrap(), d);
        }
        assert!(
            "10".parse::<HumanDuration>().is_err(),
            "a bare number has no unit"
        );
    }

    #[test]
    fn redis_urls_hide_their_password_everywhere() {
        let url = RedisUrl::parse("rediss://warmer:pw@cache.internal:6380/2").unwrap();
        assert_eq!(url.to_string(), "rediss://warmer:***@cache.internal:6380/2");
        assert_eq!(
            format!("{url:?}"),
            "RedisUrl(rediss://warmer:***@cache.internal:6380/2)"
        );
        assert_eq!(url.address(), "cache.internal:6380");
        assert!(url.is_tls());
        assert_eq!(RedisUrl::parse("redis://h").unwrap().address(), "h:6379");
        assert_eq!(redact_url_text("redis://u:p@[x"), "redis://***@[x");
        assert_eq!(redact_url_text("no-at-sign"), "no-at-sign");
    }

    #[test]
    fn env_values_take_the_type_of_the_key_they_replace() {
        use toml::Value;
        let int = Value::Integer(1);
        assert_eq!(coerce_env(" 42 ", Some(&int)), Ok(Value::Integer(42)));
        assert!(coerce_env("4x", Some(&int)).is_err());
        assert_eq!(
            coerce_env("0.5", Some(&Value::Float(1.0))),
            Ok(Value::Float(0.5))
        );
        assert_eq!(
            coerce_env("123456", None),
            Ok(Value::String("123456".into()))
        );
        let s = Value::String(String::new());
        assert_eq!(
            coerce_env("true", Some(&s)),
            Ok(Value::String("true".into()))
        );
    }
}
