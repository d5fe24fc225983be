//! The fake NotifyBC API lives in its own crate (`crates/fake-notifybc`), shared with the
//! benchmarks and the examples; this adds what only the tests need on top of it.

pub use fake_notifybc::*;

/// Settings for a server under test, pointing at the fake.
pub trait SettingsFor {
    /// Settings pointing at this fake with `extra` TOML layered over the defaults.
    fn settings(&self, extra: &str) -> notify_inbound::config::Settings;
}

impl SettingsFor for FakeApi {
    fn settings(&self, extra: &str) -> notify_inbound::config::Settings {
        notify_inbound::config::Settings::from_toml_str(&self.config_toml(extra))
            .expect("test settings")
    }
}
