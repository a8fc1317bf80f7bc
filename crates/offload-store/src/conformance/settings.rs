//! Settings: the first value stored wins.

use crate::SettingInitParams;

use super::Harness;

/// A setting keeps the first value stored.
pub async fn setting_init_keeps_the_first_value(h: Harness) {
    let init = |value: &str| SettingInitParams {
        name: "push.signing_secret".into(),
        value: value.into(),
    };
    assert_eq!(h.store.setting_init(init("first")).await.unwrap(), "first");
    assert_eq!(h.store.setting_init(init("second")).await.unwrap(), "first");
    let other = SettingInitParams {
        name: "other".into(),
        value: "x".into(),
    };
    assert_eq!(h.store.setting_init(other).await.unwrap(), "x");
}
