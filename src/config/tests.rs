use std::net::SocketAddr;
use std::time::Duration;

use super::*;

#[test]
fn defaults_load() {
    let s = Settings::defaults().unwrap();
    assert_eq!(s.api_base(), "http://localhost:3000/api");
    assert_eq!(s.inbound_smtp_server.options.size, 1_000_000);
    assert_eq!(s.bounce.unsub_threshold, 5);
    assert_eq!(
        s.listeners()[0].addr,
        "0.0.0.0:0".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(s.hostname(), s.domains()[0]);
    assert_eq!(
        s.inbound_smtp_server.limits.command_timeout,
        Duration::from_secs(60)
    );
    assert_eq!(s.log.level.as_str(), "info");
    assert_eq!(s.operations.listen, Some("127.0.0.1:9025".parse().unwrap()));
}

#[test]
fn values_come_out_typed() {
    let s = Settings::from_toml_str(
        "[inbound_smtp_server]\nlistening_ip = '::1'\nlistening_smtp_port = 2525\n\
         hostname = ' mx.example '\nid_regex = '^[0-9]+$'\ncode_regex = ''\n\
         [inbound_smtp_server.limits]\ndata_timeout_secs = 7\n\
         [bounce]\ncount_window_secs = 60\nsubject_regex = '\\d'\n\
         [api]\ntimeout_ms = 250\n[operations]\nlisten = ''\n\
         [log]\nlevel = ' warn,notify_inbound=debug '\n",
    )
    .unwrap();
    assert_eq!(s.listeners()[0].addr, "[::1]:2525".parse().unwrap());
    assert_eq!(s.listeners()[0].tls, TlsMode::Starttls);
    assert_eq!(s.hostname(), "mx.example");
    let id = s.inbound_smtp_server.id_regex.as_ref().unwrap();
    assert!(id.is_match("42") && !id.is_match("4a"));
    assert!(s.inbound_smtp_server.code_regex.is_none());
    assert_eq!(
        s.inbound_smtp_server.limits.data_timeout,
        Duration::from_secs(7)
    );
    assert_eq!(s.bounce.count_window, Duration::from_secs(60));
    // JavaScript's `\d` is ASCII only.
    let subject = s.bounce.subject_regex.as_ref().unwrap();
    assert!(subject.is_match("5") && !subject.is_match("\u{0665}"));
    assert_eq!(s.api.timeout, Duration::from_millis(250));
    assert_eq!(s.operations.listen, None);
    assert_eq!(s.log.level.as_str(), "warn,notify_inbound=debug");

    let e = Settings::from_toml_str("[operations]\nlisten = 'localhost'\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("operations.listen") && e.contains("host:port"),
        "{e}"
    );
    let e = Settings::from_toml_str("[log]\nlevel = 'verbose'\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("log.level") && e.contains("verbose"), "{e}");
    let e = Settings::from_toml_str("[[inbound_smtp_server.listeners]]\nip = 'localhost'\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("inbound_smtp_server.listeners[0].ip") && e.contains("an IP address"),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_named_as_written_with_a_suggestion() {
    let e = Settings::from_toml_str("[bounce]\nsubjectRegx = 'x'\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key `bounce.subjectRegx`"), "{e}");
    assert!(e.contains("did you mean `subjectRegex`?"), "{e}");
    let e = Settings::from_toml_str("[email.inboundSmtpServer]\nlisteningSmtpPrt = 1\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown key `email.inboundSmtpServer.listeningSmtpPrt`"),
        "{e}"
    );
    assert!(e.contains("did you mean `listeningSmtpPort`?"), "{e}");
    let e = Settings::from_toml_str("[bounce]\nsubject_regx = 'x'\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key `bounce.subject_regx`"), "{e}");
    assert!(e.contains("did you mean `subject_regex`?"), "{e}");
}

#[test]
fn listening_smtp_port_beside_listeners_names_both_keys() {
    let listeners = "[[inbound_smtp_server.listeners]]\nport = 2526\n";
    for port in ["listening_smtp_port = 2525", "listeningSmtpPort = 2525"] {
        let e = Settings::from_toml_str(&format!("[inbound_smtp_server]\n{port}\n{listeners}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("inbound_smtp_server.listening_smtp_port"), "{e}");
        assert!(e.contains("[[inbound_smtp_server.listeners]]"), "{e}");
    }
    let s = Settings::from_toml_str(listeners).unwrap();
    assert_eq!(s.listeners().len(), 1);
    assert_eq!(s.listeners()[0].addr.port(), 2526);
}

#[test]
fn camel_case_aliases() {
    let s = Settings::from_toml_str(
        "internalHttpHost = 'http://notifybc:3000'\n\
         [inboundSmtpServer]\nlisteningSmtpPort = 2525\ndomain = 'a.example, B.example'\n\
         [email.bounce]\nunsubThreshold = 2\nsmtpStatusCodeRegex = '5\\.1\\.1'\n\
         [email.listUnsubscribeByEmail]\nenabled = false\n",
    )
    .unwrap();
    assert_eq!(s.listeners()[0].addr.port(), 2525);
    assert_eq!(s.domains(), vec!["a.example", "b.example"]);
    assert_eq!(s.bounce.unsub_threshold, 2);
    let raw =
        RawSettings::from_toml_str("[email.bounce]\nsmtpStatusCodeRegex = '5\\.1\\.1'\n").unwrap();
    assert_eq!(raw.bounce.status_code_pattern(), "5\\.1\\.1");
    assert!(!s.list_unsubscribe_by_email.enabled);
    assert_eq!(s.api_base(), "http://notifybc:3000/api");
}

#[test]
fn bad_values_name_the_key() {
    let e = Settings::from_toml_str("[inbound_smtp_server]\nlistening_smtp_port = 'abc'\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("inbound_smtp_server.listening_smtp_port"), "{e}");
    let e = Settings::from_toml_str("[bounce]\nsubject_regex = '(?=x)'\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bounce.subject_regex") && e.contains("look-around"),
        "{e}"
    );
    let e = Settings::from_toml_str("[bounce]\nno_such_key = 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no_such_key"), "{e}");
    let e = Settings::from_toml_str("internal_http_host = 'notifybc'\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("internal_http_host") && e.contains("\"notifybc\""),
        "{e}"
    );
}

#[test]
fn coordination_is_off_by_default_and_checked_when_on() {
    let s = Settings::defaults().unwrap();
    assert!(!s.coordination.enabled());
    assert_eq!(s.coordination.lock_expiry, Duration::from_millis(85_000));

    let s = Settings::from_toml_str(
        "[coordination]\nredis_url = 'rediss://:pw@redis.example:6380/2'\n",
    )
    .unwrap();
    assert!(s.coordination.enabled());

    let e = Settings::from_toml_str("[coordination]\nredis_url = 'http://u:hunter2@h/0'\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("coordination.redis_url"), "{e}");
    assert!(!e.contains("hunter2"), "the password is not shown: {e}");

    let e = Settings::from_toml_str(
        "[api]\ntimeout_ms = 2000\n[coordination]\nlock_expiry_ms = 15000\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("coordination.lock_expiry_ms")
            && e.contains("16000")
            && e.contains("api.timeout_ms"),
        "{e}"
    );
    let s = Settings::from_toml_str(
        "[api]\ntimeout_ms = 2000\n[coordination]\nlock_expiry_ms = 16000\n",
    )
    .unwrap();
    assert_eq!(s.coordination.lock_expiry, Duration::from_millis(16_000));

    let e = Settings::from_toml_str("[coordination]\nlock_acquire_timeout_ms = 0\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("coordination.lock_acquire_timeout_ms"), "{e}");
}

#[test]
fn secrets_are_redacted() {
    let toml = "[api]\naccess_token = 'Bearer opensesame'\n\
                [coordination]\nredis_url = 'redis://user:hunter2@h:6379/0'\n\
                redis_password = 'swordfish'\n";
    let s = Settings::from_toml_str(toml).unwrap();
    let raw = RawSettings::from_toml_str(toml).unwrap();
    let shown = toml::to_string(&raw.redacted()).unwrap();
    let debug = format!("{s:?}");
    let raw_debug = format!("{raw:?}");
    for text in [&shown, &debug, &raw_debug] {
        assert!(
            !text.contains("hunter2")
                && !text.contains("swordfish")
                && !text.contains("opensesame"),
            "{text}"
        );
    }
    assert!(shown.contains("redis://user:redacted@h:6379/0"), "{shown}");
    assert!(debug.contains("access_token: \"<redacted>\""), "{debug}");
    assert_eq!(s.api.access_token.expose(), "Bearer opensesame");
    assert_eq!(redact_url_password("redis://h:6379/0"), "redis://h:6379/0");
}

#[test]
fn default_failed_recipient_regex_compiles() {
    let s = Settings::from_toml_str("[bounce]\ndecision = 'notifybc'\n").unwrap();
    let re = s.bounce.failed_recipient_regex.unwrap();
    assert_eq!(
        re.find("Final-Recipient: rfc822; bar@foo.com")
            .map(|m| m.as_str()),
        Some("bar@foo.com")
    );
}
