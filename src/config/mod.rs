//! Typed settings, loaded in layers: the built-in defaults (`config/default.toml`, compiled in),
//! an optional TOML file, then `FCW_<SECTION>__<KEY>` environment variables.
//!
//! Everything is validated here, before any I/O elsewhere, and every problem names the key path,
//! the offending value and where the value came from, because a typo in a daemon's config must
//! stop it at start-up rather than be silently ignored. Secrets are wrapped in [`Secret`], which
//! neither `Debug` nor `Serialize` can reveal.

mod checks;
mod load;
mod secrets;
mod sections;
mod validate;
mod values;

pub use load::*;
pub use secrets::*;
pub use sections::*;
pub use values::*;
