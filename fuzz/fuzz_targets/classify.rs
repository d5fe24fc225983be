//! Any bytes as a bounce message: the classifier and NotifyBC's decision, with the default
//! filters and with every option beyond NotifyBC switched on. Both must be total (no panic,
//! no hang) and deterministic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use notify_inbound::classify::{Filters, assess, classify};
use notify_inbound::config::Settings;

fn filters() -> &'static [Filters; 2] {
    static FILTERS: OnceLock<[Filters; 2]> = OnceLock::new();
    FILTERS.get_or_init(|| {
        let defaults = Settings::defaults().expect("default settings");
        let all_on = Settings::from_toml_str(
            "[bounce]\nsubject_regex = '(?i)undeliverable|failure|returned'\n\
             case_insensitive_domain = true\ncase_insensitive_local_part = true\n\
             multiple_failed_recipients = true\nper_recipient_status = true\n\
             ignore_auto_replies = true\nignore_delays = true\n\
             complaints_unsubscribe = true\nmax_stored_message_bytes = 4096\n",
        )
        .expect("fuzz settings");
        [
            Filters::new(&defaults.bounce),
            Filters::new(&all_on.bounce),
        ]
    })
}

fuzz_target!(|raw: &[u8]| {
    let verdict = classify(raw);
    assert_eq!(verdict, classify(raw), "classify is not deterministic");
    for f in filters() {
        let a = assess(raw, f, Some("bar@foo.com"));
        assert_eq!(
            a.verdict, verdict,
            "assess and classify disagree on the verdict"
        );
        let first = verdict.recipients.first().map(|r| r.address.clone());
        let _ = assess(raw, f, first.as_deref());
        let _ = assess(raw, f, None);
    }
});
