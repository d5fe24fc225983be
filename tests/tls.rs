//! TLS as clients see it: the configured certificate whatever SNI name is sent, TLS 1.2 and
//! 1.3, and a rotated certificate served without a restart.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{Client, Recorder, code, insecure_tls, insecure_tls_versions, start};
use notify_inbound::config::{Settings, TlsMode};
use notify_inbound::tls::generate_self_signed;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An implicit-TLS listener with the certificate files given (empty: self-signed).
fn settings(cert: &str, key: &str) -> Settings {
    Settings::from_toml_str(&format!(
        "[inbound_smtp_server]\ndomain = 'notify.example'\ntls_reload_interval_secs = 1\n\
         [inbound_smtp_server.options]\ncert = '{cert}'\nkey = '{key}'\n\
         [[inbound_smtp_server.listeners]]\nip = '127.0.0.1'\nport = 0\ntls = 'implicit'\n\
         [operations]\nlisten = ''\n"
    ))
    .unwrap()
}

/// Handshakes with `sni` and returns the server certificate's DER and the version spoken.
async fn handshake(
    addr: std::net::SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> (Vec<u8>, rustls::ProtocolVersion) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(config)
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap();
    let (_, conn) = tls.get_ref();
    let cert = conn.peer_certificates().unwrap()[0].to_vec();
    let version = conn.protocol_version().unwrap();
    let mut c = Client::new(tls);
    assert_eq!(code(&c.reply().await), 220);
    (cert, version)
}

fn only(version: &'static rustls::SupportedProtocolVersion) -> Arc<rustls::ClientConfig> {
    insecure_tls_versions(&[version])
}

fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn configured_certificate_any_sni_tls12_and_13_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (cert, key) = generate_self_signed(&["mx.notify.example".into()]).unwrap();
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let server = start(
        settings(cert_path.to_str().unwrap(), key_path.to_str().unwrap()),
        Recorder::new(),
    )
    .await;
    let addr = server.addr(TlsMode::Implicit).unwrap();

    for sni in [
        "mx.notify.example",
        "inbound-smtp.apps.cluster.example",
        "localhost",
    ] {
        let (served, _) = handshake(addr, sni, insecure_tls()).await;
        assert_eq!(served, der_of(&cert), "SNI {sni}");
    }
    let (_, v) = handshake(addr, "a.example", only(&rustls::version::TLS12)).await;
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_2);
    let (_, v) = handshake(addr, "a.example", only(&rustls::version::TLS13)).await;
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);

    // A connection open across the rotation is not disturbed.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(insecure_tls())
        .connect(ServerName::try_from("a.example").unwrap(), tcp)
        .await
        .unwrap();
    let mut open = Client::new(tls);
    assert_eq!(code(&open.reply().await), 220);

    let (cert2, key2) = generate_self_signed(&["rotated.notify.example".into()]).unwrap();
    std::fs::write(&key_path, &key2).unwrap();
    std::fs::write(&cert_path, &cert2).unwrap();
    let mut served = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        served = handshake(addr, "a.example", insecure_tls()).await.0;
        if served == der_of(&cert2) {
            break;
        }
    }
    assert_eq!(served, der_of(&cert2), "rotated certificate served");
    assert_eq!(code(&open.cmd("EHLO c.example").await), 250);
}

/// Runs `openssl s_client` against `addr` with `args`; returns what it printed.
fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "a.example",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl must be installed (apt-get install -y openssl)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_protocols_and_non_aead_suites_are_refused() {
    let server = start(settings("", ""), Recorder::new()).await;
    let addr = server.addr(TlsMode::Implicit).unwrap();
    let run =
        |args: &'static [&'static str]| tokio::task::spawn_blocking(move || s_client(addr, args));
    // SECLEVEL=0 lets the client offer what it would refuse itself, so a refusal is ours:
    // the server's alert must be in the answer (rustls answers a hello it cannot serve,
    // whether for its version or its suites, with handshake_failure). A client that could
    // not even offer the protocol or suite ("no protocols available", "no ciphers
    // available") proves nothing.
    for (args, what, alert) in [
        (
            &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"][..],
            "TLS 1.1",
            "alert handshake failure",
        ),
        (
            &["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"][..],
            "TLS 1.0",
            "alert handshake failure",
        ),
        (
            &["-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"][..],
            "CBC suite",
            "alert handshake failure",
        ),
        (
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"][..],
            "ECDHE CBC suite",
            "alert handshake failure",
        ),
    ] {
        let out = run(args).await.unwrap();
        for own in ["no protocols available", "no ciphers available"] {
            assert!(
                !out.contains(own),
                "this openssl cannot offer {what} ({own}: its build or the system crypto \
                 policy forbids it), so the server's refusal cannot be checked; \
                 use an openssl that can (openssl s_client {}):\n{out}",
                args.join(" ")
            );
        }
        assert!(
            out.contains(alert) && out.contains("Cipher is (NONE)"),
            "{what}: no \"{alert}\" alert from the server:\n{out}"
        );
    }
    let out = run(&["-tls1_2"]).await.unwrap();
    assert!(out.contains("TLSv1.2, Cipher is ECDHE-"), "{out}");
    let out = run(&["-tls1_3"]).await.unwrap();
    assert!(out.contains("TLSv1.3, Cipher is TLS_"), "{out}");
}

/// Handshakes with `acceptor` over an in-memory pipe; returns the served certificate's DER.
async fn served_by(acceptor: tokio_rustls::TlsAcceptor) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let accept = tokio::spawn(async move { acceptor.accept(server).await.map(|_| ()) });
    let tls = TlsConnector::from(insecure_tls())
        .connect(ServerName::try_from("a.example").unwrap(), client)
        .await
        .expect("handshake with the certificate in force");
    accept.await.unwrap().expect("server side of the handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A rotation written one file at a time: between the two writes the certificate and key
/// do not belong together. The reload refuses that pair and the previous one stays in
/// force (handshakes succeed with the old certificate) until the second file arrives.
#[tokio::test]
async fn a_mismatched_certificate_and_key_keep_the_previous_pair() {
    use notify_inbound::tls::TlsProvider;
    use std::time::SystemTime;

    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (cert, key) = generate_self_signed(&["old.notify.example".into()]).unwrap();
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let provider =
        TlsProvider::new(cert_path.to_str().unwrap(), key_path.to_str().unwrap(), &[]).unwrap();
    assert_eq!(served_by(provider.acceptor()).await, der_of(&cert));
    // Modification times a little ahead, so each write is seen as a change whatever the
    // file system's timestamp resolution.
    let touch = |path: &std::path::Path, secs: u64| {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(secs))
            .unwrap();
    };

    let (cert2, key2) = generate_self_signed(&["new.notify.example".into()]).unwrap();
    // The new certificate with the old key, then the old certificate with the new key.
    for (c, k, step) in [(&cert2, &key, 5), (&cert, &key2, 10)] {
        std::fs::write(&cert_path, c).unwrap();
        std::fs::write(&key_path, k).unwrap();
        touch(&cert_path, step);
        touch(&key_path, step);
        let refused = provider.reload_if_changed();
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains("cannot be used together")),
            "a mismatched pair must be refused: {refused:?}"
        );
        assert_eq!(
            served_by(provider.acceptor()).await,
            der_of(&cert),
            "the previous certificate is still served"
        );
    }

    std::fs::write(&cert_path, &cert2).unwrap();
    touch(&cert_path, 15);
    assert!(
        provider.reload_if_changed().unwrap(),
        "the finished rotation"
    );
    assert_eq!(served_by(provider.acceptor()).await, der_of(&cert2));
}
