//! The configuration files shipped with the project: the example documents every key of
//! the defaults with the default value, and `check-config` reports bad values by key.

use notify_inbound::config::{DEFAULT_TOML, RawSettings};

fn keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = value {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_table() {
                keys(&key, v, out);
            } else {
                out.push(key);
            }
        }
    }
}

#[test]
fn the_example_documents_every_default_key_with_its_default() {
    let example = std::fs::read_to_string("config.local.toml.example").unwrap();
    // Its uncommented settings are the defaults themselves.
    let from_example = RawSettings::from_toml_str(&example).expect("the example is valid");
    from_example.validate().expect("the example is valid");
    let defaults = RawSettings::defaults().unwrap();
    assert_eq!(
        toml::to_string(&from_example).unwrap(),
        toml::to_string(&defaults).unwrap()
    );
    let mut all = Vec::new();
    keys("", &toml::from_str(DEFAULT_TOML).unwrap(), &mut all);
    for key in all {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            example.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{leaf} ="))),
            "config.local.toml.example does not document `{key}`"
        );
    }
}

#[test]
fn check_config_names_the_key_value_and_expectation() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .arg("check-config")
        .env("NOTIFY_INBOUND__BOUNCE__UNSUB_THRESHOLD", "many")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bounce.unsub_threshold") && err.contains("many"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notifybc.toml");
    std::fs::write(
        &file,
        "internalHttpHost = 'http://notifybc:3000'\n[api]\naccess_token = 'secret-token'\n\
         [email.inboundSmtpServer]\ndomain = 'host.foo.com'\nlisteningSmtpPort = 2525\n\
         [email.bounce]\nunsubThreshold = 3\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_notify-inbound"))
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "internal_http_host = \"http://notifybc:3000\"",
        "domain = \"host.foo.com\"",
        "listening_smtp_port = 2525",
        "unsub_threshold = 3",
        "access_token = \"<redacted>\"",
    ] {
        assert!(printed.contains(expected), "missing {expected}:\n{printed}");
    }
    assert!(!printed.contains("secret-token"));
}
