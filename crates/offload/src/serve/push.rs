//! The push settings a server runs with: configured signing secrets, or the one generated on the first start
//! and kept in the database (so it survives restarts and every node of a shared database signs alike).

use anyhow::{Context, Result};
use offload_engine::{PushConfig, SigningSecret};
use offload_store::{SettingInitParams, Store};

use super::config::PushSettings;

/// The setting that holds the generated secret.
pub(crate) const SECRET_SETTING: &str = "push.signing_secret";

/// The generated secret kept in the database, created now if there is none.
pub(crate) async fn stored_secret(store: &dyn Store) -> Result<SigningSecret> {
    let fresh = SigningSecret::generate().context("cannot draw a random signing secret")?;
    let stored = store
        .setting_init(SettingInitParams {
            name: SECRET_SETTING.to_owned(),
            value: fresh.expose().to_owned(),
        })
        .await
        .context("cannot read the signing secret from the database")?;
    SigningSecret::parse(&stored).context("the signing secret kept in the database is not valid")
}

/// The engine's push configuration; `true` when the secret is the generated one.
pub(crate) async fn config(
    store: &dyn Store,
    settings: &PushSettings,
) -> Result<(PushConfig, bool)> {
    let (signing_secrets, generated) = if settings.signing_secrets.is_empty() {
        (vec![stored_secret(store).await?], true)
    } else {
        (settings.signing_secrets.clone(), false)
    };
    let config = PushConfig {
        signing_secrets,
        policy: settings.policy.clone(),
        per_destination: settings.per_destination,
        default_timeout: settings.default_timeout,
        max_in_flight: settings.max_in_flight,
        ..PushConfig::default()
    };
    Ok((config, generated))
}
