//! Any text as `config.local.toml`: loading and validating either succeed or give a
//! `ConfigError`, and settings that validate can build everything the server builds from
//! them at start (router, filters, listeners) without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use notify_inbound::router::Router;
use notify_inbound::classify::Filters;
use notify_inbound::config::RawSettings;

fuzz_target!(|text: &str| {
    let Ok(raw) = RawSettings::from_toml_str(text) else {
        return;
    };
    // What `check-config` prints.
    let _ = toml::to_string_pretty(&raw.redacted());
    let Ok(settings) = raw.validate() else {
        return;
    };
    let _ = Router::new(&settings);
    let _ = Filters::new(&settings.bounce);
    let _ = settings.listeners();
    let _ = settings.domains();
    let _ = settings.api_base();
    let _ = settings.hostname();
});
