//! The process-wide TLS setup shared by the Redis client and (later) the HTTP client.

/// Installs aws-lc-rs as rustls' process-wide crypto provider. rustls panics at the first
/// handshake when more than one provider is compiled in and none was chosen, so every TLS user
/// calls this first; later calls are no-ops.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
