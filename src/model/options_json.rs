//! The options value's JSON, written field by field. It is the cache's largest value (hundreds
//! of contracts per expiry), and through serde two fifths of its serialising went to escaping
//! the same static field names again for every contract (docs/performance.md). The bytes are exactly those
//! `serde_json::to_writer` writes for [`OptionsChain`]: every scalar still goes through
//! serde_json, only the names and punctuation are written as they are, and the tests below hold
//! the two to the same output.

use serde::Serialize;

use super::{OptionContract, OptionsChain, rfc3339};

impl OptionsChain {
    /// Appends this value's JSON to `out`: the same bytes as `serde_json::to_writer`, faster.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        field(out, b"{\"schema_version\":", &self.schema_version);
        field(out, b",\"symbol\":", &self.symbol);
        field(out, b",\"source\":", &self.source);
        field(out, b",\"fetched_at\":", &rfc3339(self.fetched_at));
        field(out, b",\"underlying_price\":", &self.underlying_price);
        field(out, b",\"expirations\":", &self.expirations);
        out.extend_from_slice(b",\"chains\":[");
        for (i, chain) in self.chains.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            field(out, b"{\"expiration\":", &chain.expiration);
            out.extend_from_slice(b",\"calls\":");
            contracts(out, &chain.calls);
            out.extend_from_slice(b",\"puts\":");
            contracts(out, &chain.puts);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }
}

fn contracts(out: &mut Vec<u8>, list: &[OptionContract]) {
    out.push(b'[');
    for (i, c) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        field(out, b"{\"contract_symbol\":", &c.contract_symbol);
        field(out, b",\"strike\":", &c.strike);
        field(out, b",\"last_price\":", &c.last_price);
        field(out, b",\"bid\":", &c.bid);
        field(out, b",\"ask\":", &c.ask);
        field(out, b",\"volume\":", &c.volume);
        field(out, b",\"open_interest\":", &c.open_interest);
        field(
            out,
            b",\"implied_volatility\":",
            &c.implied_volatility.map(super::round_six),
        );
        field(out, b",\"in_the_money\":", &c.in_the_money);
        if let Some(greeks) = &c.greeks {
            field(out, b",\"greeks\":", greeks);
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// A field: `name` (its quoted name and colon, after the brace or comma before it), then its
/// value as serde_json writes it.
fn field<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &[u8], value: &T) {
    out.extend_from_slice(name);
    // Numbers, strings, dates and small structs into a Vec: nothing here can fail.
    serde_json::to_writer(&mut *out, value).expect("serialising into memory");
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate};
    use proptest::prelude::*;

    use super::*;
    use crate::model::{ExpiryChain, Greeks, SCHEMA_VERSION};

    fn same_as_serde(chain: &OptionsChain) {
        let mut fast = Vec::new();
        chain.write_json(&mut fast);
        let serde = serde_json::to_vec(chain).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&serde)
        );
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(0.000010000000000000004),
            (0u32..100_000).prop_map(|c| f64::from(c) / 100.0),
        ]
    }

    fn contract() -> impl Strategy<Value = OptionContract> {
        let greeks = proptest::option::of(
            (
                proptest::option::of(float()),
                proptest::option::of(float()),
                proptest::option::of(float()),
                proptest::option::of(float()),
                proptest::option::of(float()),
            )
                .prop_map(|(delta, gamma, theta, vega, rho)| Greeks {
                    delta,
                    gamma,
                    theta,
                    vega,
                    rho,
                }),
        );
        (
            ".*",
            float(),
            proptest::option::of(float()),
            proptest::option::of(float()),
            proptest::option::of(float()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(float()),
            proptest::option::of(any::<bool>()),
            greeks,
        )
            .prop_map(
                |(symbol, strike, last, bid, ask, volume, oi, iv, itm, greeks)| OptionContract {
                    contract_symbol: symbol,
                    strike,
                    last_price: last,
                    bid,
                    ask,
                    volume,
                    open_interest: oi,
                    implied_volatility: iv,
                    in_the_money: itm,
                    greeks,
                },
            )
    }

    fn date() -> impl Strategy<Value = NaiveDate> {
        (0i32..40_000).prop_map(|d| NaiveDate::from_num_days_from_ce_opt(700_000 + d).unwrap())
    }

    proptest! {
        #[test]
        fn writes_what_serde_json_writes(
            symbol in ".*",
            source in ".*",
            at in 0i64..4_000_000_000,
            price in proptest::option::of(float()),
            expirations in proptest::collection::vec(date(), 0..4),
            chains in proptest::collection::vec(
                (
                    date(),
                    proptest::collection::vec(contract(), 0..4),
                    proptest::collection::vec(contract(), 0..4),
                ),
                0..3,
            ),
        ) {
            same_as_serde(&OptionsChain {
                schema_version: SCHEMA_VERSION,
                symbol,
                source,
                fetched_at: DateTime::from_timestamp(at, 0).unwrap(),
                underlying_price: price,
                expirations,
                chains: chains
                    .into_iter()
                    .map(|(expiration, calls, puts)| ExpiryChain { expiration, calls, puts })
                    .collect(),
            });
        }
    }
}
