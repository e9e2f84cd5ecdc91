//! Validation of the provider chains and the integrity rules.

use super::sections::{MAX_BATCH, MAX_QUOTE_BATCH, OBJECT_TYPES, ProviderName, Settings};
use super::validate::positive;
use super::values::KeyProblem;
use crate::keys::MEMBER_PLACEHOLDER;

impl Settings {
    pub(super) fn validate_providers(&self) -> Result<(), KeyProblem> {
        let p = &self.provider;
        for (kind, chain) in [
            ("stock", &p.stock),
            ("options", &p.options),
            ("earnings", &p.earnings),
        ] {
            let key = format!("provider.{kind}");
            if chain.is_empty() {
                return Err((key, "name at least one provider".into()));
            }
            let mut seen = std::collections::BTreeSet::new();
            for name in chain {
                if !seen.insert(name) {
                    return Err((key, format!("{} is listed twice", name.as_str())));
                }
                if kind == "earnings" && *name == ProviderName::Tradier {
                    return Err((
                        key,
                        "tradier has no earnings data; use finnhub, polygon, yahoo or replay"
                            .into(),
                    ));
                }
                if kind != "earnings" && *name == ProviderName::Finnhub {
                    return Err((
                        key,
                        "finnhub serves earnings only here; use polygon, tradier, yahoo or replay"
                            .into(),
                    ));
                }
            }
        }
        let uses = |name: ProviderName| {
            [&p.stock, &p.options, &p.earnings]
                .iter()
                .any(|c| c.contains(&name))
        };
        if uses(ProviderName::Polygon) && p.polygon.api_key.is_none() {
            return Err((
                "provider.polygon.api_key".into(),
                "polygon is in a provider chain but has no api_key or api_key_file".into(),
            ));
        }
        if uses(ProviderName::Tradier) && p.tradier.token.is_none() {
            return Err((
                "provider.tradier.token".into(),
                "tradier is in a provider chain but has no token or token_file".into(),
            ));
        }
        if uses(ProviderName::Finnhub) && p.finnhub.api_key.is_none() {
            return Err((
                "provider.finnhub.api_key".into(),
                "finnhub is in a provider chain but has no api_key or api_key_file".into(),
            ));
        }
        positive(&p.finnhub.window, "provider.finnhub.window")?;
        positive(&p.timeout, "provider.timeout")?;
        positive(&p.connect_timeout, "provider.connect_timeout")?;
        positive(&p.breaker_cooldown, "provider.breaker_cooldown")?;
        if p.max_body.0 < 1024 {
            return Err((
                "provider.max_body".into(),
                format!("{} is below the 1KiB minimum", p.max_body),
            ));
        }
        if p.breaker_failures == 0 {
            return Err((
                "provider.breaker_failures".into(),
                "must be at least 1".into(),
            ));
        }
        for (key, agent) in [
            ("provider.user_agent", &p.user_agent),
            ("provider.yahoo.user_agent", &p.yahoo.user_agent),
        ] {
            if agent.trim().is_empty() || reqwest::header::HeaderValue::from_str(agent).is_err() {
                return Err((key.into(), format!("{agent:?} is not a valid header value")));
            }
        }
        for (name, limits) in [
            ("yahoo", p.yahoo.limits()),
            ("polygon", p.polygon.limits()),
            ("tradier", p.tradier.limits()),
            ("finnhub", p.finnhub.limits()),
        ] {
            if limits.max_concurrency == 0 {
                return Err((
                    format!("provider.{name}.max_concurrency"),
                    "must be at least 1".into(),
                ));
            }
            let rps = limits.requests_per_second;
            if !rps.is_finite() || rps < 0.0 {
                return Err((
                    format!("provider.{name}.requests_per_second"),
                    format!("{rps} is not a rate (0 = unlimited)"),
                ));
            }
        }
        for (key, batch) in [
            ("provider.yahoo.quote_batch", p.yahoo.quote_batch),
            ("provider.tradier.quote_batch", p.tradier.quote_batch),
        ] {
            if !(1..=MAX_QUOTE_BATCH).contains(&batch) {
                return Err((
                    key.into(),
                    format!("{batch} is outside 1..={MAX_QUOTE_BATCH}"),
                ));
            }
        }
        if let Some(dir) = &p.replay.dir
            && !dir.is_dir()
        {
            return Err((
                "provider.replay.dir".into(),
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(())
    }
}

impl Settings {
    pub(super) fn validate_integrity(&self) -> Result<(), KeyProblem> {
        let i = &self.integrity;
        if !(1..=MAX_BATCH).contains(&i.scan_count) {
            return Err((
                "integrity.scan_count".into(),
                format!("{} is outside 1..={MAX_BATCH}", i.scan_count),
            ));
        }
        if !(0.0..=1.0).contains(&self.status.min_coverage) {
            return Err((
                "status.min_coverage".into(),
                format!("{} is not a fraction in [0, 1]", self.status.min_coverage),
            ));
        }
        if !(0.0..=1.0).contains(&i.prune_max_fraction) {
            return Err((
                "integrity.prune_max_fraction".into(),
                format!("{} is not a fraction in [0, 1]", i.prune_max_fraction),
            ));
        }
        for (n, rule) in i.rules.iter().enumerate() {
            let key = |field: &str| format!("integrity.rules[{n}].{field}");
            if rule.index.is_empty() {
                return Err((key("index"), "must not be empty".into()));
            }
            if rule.member_key.matches(MEMBER_PLACEHOLDER).count() != 1 {
                return Err((
                    key("member_key"),
                    format!(
                        "{:?} must contain {MEMBER_PLACEHOLDER} exactly once",
                        rule.member_key
                    ),
                ));
            }
            match (&rule.object_pattern, rule.reindex) {
                (None, true) => {
                    return Err((
                        key("object_pattern"),
                        "reindex = true needs an object_pattern such as \"finance:position:*\""
                            .into(),
                    ));
                }
                (Some(_), false) => {
                    return Err((
                        key("object_pattern"),
                        "only used with reindex = true".into(),
                    ));
                }
                _ => {}
            }
            match &rule.object_type {
                Some(_) if !rule.reindex => {
                    return Err((key("object_type"), "only used with reindex = true".into()));
                }
                Some(t) if !OBJECT_TYPES.contains(&t.as_str()) => {
                    return Err((
                        key("object_type"),
                        format!("{t:?} is not one of {}", OBJECT_TYPES.join(", ")),
                    ));
                }
                _ => {}
            }
            if rule.reindex && rule.is_pattern() {
                return Err((
                    key("reindex"),
                    format!(
                        "reindex needs a single index, not the pattern {:?}",
                        rule.index
                    ),
                ));
            }
        }
        Ok(())
    }
}
