//! TLS as clients see it: the configured certificate whatever SNI name is sent, TLS 1.2 and
//! 1.3, and a rotated certificate served without a restart.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{Client, Recorder, code, insecure_tls, insecure_tls_versions, start};
use notify_inbound::config::{Settings, TlsMode};
use notify_inbound::tls::generate_self_signed;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

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
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
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
