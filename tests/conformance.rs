//! The black-box RFC checklist (`tests/tools/check_smtp.py`, 51 checks) against the server
//! on both listener kinds. Every check must pass; python3 is required, never skipped.

mod harness;

use harness::{DOMAIN, Recorder, settings, start};
use notify_inbound::config::TlsMode;

async fn run_checklist(port: u16, implicit: bool) -> (bool, String) {
    let mut args = vec![
        "tests/tools/check_smtp.py".to_string(),
        "127.0.0.1".into(),
        port.to_string(),
        "--domain".into(),
        DOMAIN.into(),
        "--un".into(),
        "un-1-12345".into(),
        "--bn".into(),
        "bn-1-12345".into(),
        "--strict".into(),
        "--slow".into(),
        "--idle-timeout".into(),
        "5".into(),
    ];
    if implicit {
        args.push("--implicit-tls".into());
    }
    let out = tokio::process::Command::new("python3")
        .args(&args)
        .output()
        .await
        .expect("python3 must be installed to run the SMTP checklist");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rfc_check_passes_on_both_listeners() {
    let rec = Recorder::new();
    let server = start(
        settings("[inbound_smtp_server.limits]\ncommand_timeout_secs = 3\n"),
        rec.clone(),
    )
    .await;
    for (mode, implicit) in [(TlsMode::Starttls, false), (TlsMode::Implicit, true)] {
        let port = server.addr(mode).unwrap().port();
        let (ok, text) = run_checklist(port, implicit).await;
        let summary = text.lines().last().unwrap_or("").to_string();
        assert!(ok && summary.contains(" 0 failed"), "{mode:?}:\n{text}");
        println!("{mode:?}: {summary}");
    }
    assert!(rec.count() > 0, "the DATA checks delivered messages");
}
