//! Any text as `config.local.toml`: loading either succeeds or gives a `ConfigError`, and
//! settings that load can build everything the server builds from them at start (router,
//! filters, listeners) without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use notify_inbound::router::Router;
use notify_inbound::classify::Filters;
use notify_inbound::config::Settings;

fuzz_target!(|text: &str| {
    let Ok(settings) = Settings::from_toml_str(text) else {
        return;
    };
    let _ = Router::new(&settings);
    let _ = Filters::new(&settings.bounce);
    let _ = settings.listeners();
    let _ = settings.domains();
    let _ = settings.api_base();
    let _ = settings.hostname();
    // What `check-config` prints.
    let _ = toml::to_string_pretty(&settings.redacted());
});
