//! Push delivery: the dispatcher that claims push jobs and sends them to their targets, signed.
//!
//! Module map: `policy` (which addresses may be reached), `resolve` (the DNS resolver that enforces it at
//! connect time), `sign` (Standard Webhooks signatures), `deliver` (one request and its classification),
//! `dispatcher` (claims, per-destination cap, leases, completions).

mod deliver;
mod dispatcher;
pub mod policy;
mod resolve;
pub mod sign;

use std::time::Duration;

pub use deliver::ClientError;
pub(crate) use dispatcher::PushDispatcher;
pub use policy::AddressPolicy;
pub use sign::{SecretError, SigningSecret};

pub(crate) use deliver::Deliverer;

/// Push delivery settings, with the defaults documented in the README.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Deliveries are signed with each of these; empty: push delivery is off and push jobs are refused.
    pub signing_secrets: Vec<SigningSecret>,
    /// Which addresses deliveries may connect to (default: public addresses only).
    pub policy: AddressPolicy,
    /// Most deliveries in flight to one destination (`scheme://host:port`) at once (default 64).
    pub per_destination: u32,
    /// Request timeout of targets that set none (default 30 s).
    pub default_timeout: Duration,
    /// Most deliveries in flight in all (default 1024).
    pub max_in_flight: u32,
    /// Most jobs per claim (default 512).
    pub claim_batch: u32,
    /// On shutdown, how long deliveries in flight may take to finish before they are abandoned (their
    /// jobs are delivered again once their lease expires).
    pub shutdown_grace: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            signing_secrets: Vec::new(),
            policy: AddressPolicy::default(),
            per_destination: DEFAULT_PER_DESTINATION,
            default_timeout: DEFAULT_TIMEOUT,
            max_in_flight: 1024,
            claim_batch: 512,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Default cap of deliveries in flight per destination.
pub const DEFAULT_PER_DESTINATION: u32 = 64;
/// Default request timeout of a delivery.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl PushConfig {
    /// True when deliveries can be signed, so push jobs are accepted and delivered.
    pub fn enabled(&self) -> bool {
        !self.signing_secrets.is_empty()
    }
}

/// Makes rustls' `ring` provider the process default, unless a provider is installed already.
///
/// The workspace builds reqwest with `rustls-no-provider` (no aws-lc, hence no cmake), so every reqwest
/// client in a process that links this crate needs a process default provider before it is built. The
/// engine calls this when it is created; programs and tests that build reqwest clients before any engine
/// call it themselves.
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
