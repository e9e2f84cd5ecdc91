//! Wires the parts every run shares from the settings: the providers, the calendar, the TTL
//! policy and the Redis handle.

use std::sync::Arc;

use crate::calendar::Calendar;
use crate::config::Settings;
use crate::jobs::Shared;
use crate::provider::{Providers, SetupError};
use crate::store::Store;
use crate::ttl::TtlPolicy;

/// The parts every run shares, on a Redis handle that is connected or not.
pub fn shared(settings: Settings, store: Store) -> Result<Arc<Shared>, SetupError> {
    Ok(Arc::new(Shared {
        providers: Providers::from_settings(&settings)?,
        calendar: Calendar::from_settings(&settings.market),
        policy: TtlPolicy::from_settings(&settings.ttl),
        store,
        settings,
    }))
}
