//! Helpers shared by the integration tests: `mod common;` in a test file brings them in.

#![allow(dead_code)]

pub mod corpus;
pub mod dsn;
pub mod fake_api;
pub mod in_process;

/// A free TCP port on 127.0.0.1 (free when asked; whoever binds it later may lose a race).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first of `candidates` (a name on PATH, then full paths) that runs with
/// `version_arg`; the test fails with the install line `install` when none does.
pub fn installed_binary(candidates: &[&str], version_arg: &str, install: &str) -> String {
    for candidate in candidates {
        let found = std::process::Command::new(candidate)
            .arg(version_arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return candidate.to_string();
        }
    }
    panic!(
        "{} is not installed; install it with {install}",
        candidates[0]
    );
}

/// The `notify-inbound serve` binary under test, set up as the tests that run the real
/// process want it: calling the API at `api_url`, plain SMTP with STARTTLS on
/// 127.0.0.1:`smtp_port` for `domain`, no operations endpoint, `RUST_LOG` unset, standard
/// output dropped and standard error piped (the log), killed when dropped. Callers add the
/// settings their test is about with `.env(..)`; a later `.env` for the same key wins.
pub fn serve_command(api_url: &str, domain: &str, smtp_port: u16) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_notify-inbound"));
    cmd.arg("serve")
        .env("NOTIFY_INBOUND__INTERNAL_HTTP_HOST", api_url)
        .env("NOTIFY_INBOUND__INBOUND_SMTP_SERVER__DOMAIN", domain)
        .env(
            "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LISTENING_IP",
            "127.0.0.1",
        )
        .env(
            "NOTIFY_INBOUND__INBOUND_SMTP_SERVER__LISTENING_SMTP_PORT",
            smtp_port.to_string(),
        )
        .env("NOTIFY_INBOUND__OPERATIONS__LISTEN", "")
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Sends SIGTERM to a server started with [`serve_command`].
pub fn terminate(child: &tokio::process::Child) {
    let pid = child.id().expect("the server is running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -TERM {pid}");
}

/// Stops a server started with [`serve_command`] (SIGTERM) and returns its log, its
/// standard error, once it has exited.
pub async fn terminate_and_read_log(child: tokio::process::Child) -> String {
    terminate(&child);
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the server exits")
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// JavaScript's `encodeURIComponent`, written out here (not the crate's encoder) as the
/// oracle for request lines the fake API receives.
pub fn encode_uri_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
