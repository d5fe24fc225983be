//! TLS for the SMTP listeners: the server certificate (configured PEM, or a self-signed one
//! made at start), TLS 1.2/1.3 with the provider's modern suites only, and re-reading the
//! certificate files when they change so a rotated certificate is served without a restart.
//!
//! Handshakes in flight keep the configuration they started with; only new handshakes see
//! a reloaded one.
//!
//! Configured certificate files that exist but are empty are an error at start, never a
//! silent switch to a self-signed certificate: an empty Secret must not turn into a
//! certificate no sender can verify (the README's Deployment section). A self-signed
//! certificate is made only when no certificate is configured at all.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::gauge::Gauge;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} ({origin}) holds no PEM {expected}")]
    NoPem {
        what: &'static str,
        origin: String,
        expected: &'static str,
    },
    #[error("{what} ({origin}) is not valid PEM: {source}")]
    BadPem {
        what: &'static str,
        origin: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the certificate and key cannot be used together: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "the certificate file {cert} and the key file {key} (inbound_smtp_server.options.cert/key) are empty; not serving a self-signed certificate in their place: fill them (on Kubernetes, the TLS Secret's tls.crt and tls.key), or leave options.cert and options.key unset for a self-signed certificate"
    )]
    EmptyFiles { cert: String, key: String },
}

/// Where a PEM value came from: inline text (NotifyBC's `options.key`/`options.cert` hold
/// the PEM itself) or a file path, which is the form that can be re-read on rotation.
#[derive(Debug, Clone)]
enum Source {
    Inline(String),
    File(PathBuf),
}

impl Source {
    fn parse(value: &str) -> Source {
        if value.contains("-----BEGIN") {
            Source::Inline(value.to_string())
        } else {
            Source::File(PathBuf::from(value))
        }
    }

    fn read(&self, what: &'static str) -> Result<(Vec<u8>, String), TlsError> {
        match self {
            Source::Inline(text) => Ok((text.as_bytes().to_vec(), "inline PEM".to_string())),
            Source::File(path) => std::fs::read(path)
                .map(|b| (b, path.display().to_string()))
                .map_err(|source| TlsError::Read {
                    what,
                    path: path.clone(),
                    source,
                }),
        }
    }

    fn is_empty_file(&self) -> bool {
        match self {
            Source::Inline(_) => false,
            Source::File(path) => std::fs::read(path)
                .map(|b| b.iter().all(u8::is_ascii_whitespace))
                .unwrap_or(false),
        }
    }

    fn modified(&self) -> Option<SystemTime> {
        match self {
            Source::Inline(_) => None,
            Source::File(path) => std::fs::metadata(path).and_then(|m| m.modified()).ok(),
        }
    }
}

/// The server's TLS configuration, swappable at run time.
pub struct TlsProvider {
    current: RwLock<Arc<ServerConfig>>,
    cert: Option<Source>,
    key: Option<Source>,
    stamps: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
    /// True when the certificate was generated at start (no certificate configured).
    pub self_signed: bool,
    /// notAfter of the certificate in force, in Unix seconds (0 when it cannot be read).
    expiry: Gauge,
}

impl TlsProvider {
    /// Loads `cert`/`key` (PEM text or file paths); when both are empty, makes a self-signed
    /// certificate for `names`.
    pub fn new(cert: &str, key: &str, names: &[String]) -> Result<TlsProvider, TlsError> {
        let expiry = Gauge::default();
        if cert.is_empty() && key.is_empty() {
            let loaded = self_signed_config(names)?;
            expiry.set(loaded.not_after);
            return Ok(TlsProvider {
                current: RwLock::new(Arc::new(loaded.config)),
                cert: None,
                key: None,
                stamps: RwLock::new((None, None)),
                self_signed: true,
                expiry,
            });
        }
        let cert_source = Source::parse(cert);
        let key_source = Source::parse(key);
        if cert_source.is_empty_file() && key_source.is_empty_file() {
            return Err(TlsError::EmptyFiles {
                cert: cert.to_string(),
                key: key.to_string(),
            });
        }
        let stamps = (cert_source.modified(), key_source.modified());
        let loaded = load_config(&cert_source, &key_source)?;
        expiry.set(loaded.not_after);
        Ok(TlsProvider {
            current: RwLock::new(Arc::new(loaded.config)),
            cert: Some(cert_source),
            key: Some(key_source),
            stamps: RwLock::new(stamps),
            self_signed: false,
            expiry,
        })
    }

    /// Reports the certificate's notAfter in `gauge` from now on (and on every reload).
    pub fn with_expiry_gauge(mut self, gauge: Gauge) -> TlsProvider {
        gauge.set(self.expiry.get());
        self.expiry = gauge;
        self
    }

    /// notAfter of the certificate in force, in Unix seconds; 0 when it cannot be read.
    pub fn not_after(&self) -> i64 {
        self.expiry.get()
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    /// Re-reads the certificate and key when either file changed. A broken new pair is
    /// reported and the previous one stays in force, so a half-written rotation never
    /// takes the listener down. Returns Ok(true) when a new pair was loaded.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(false);
        };
        let now = (cert.modified(), key.modified());
        let before = match self.stamps.read() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        if now == before {
            return Ok(false);
        }
        let loaded = load_config(cert, key)?;
        if let Ok(mut g) = self.current.write() {
            *g = Arc::new(loaded.config);
        }
        self.expiry.set(loaded.not_after);
        if let Ok(mut g) = self.stamps.write() {
            *g = now;
        }
        Ok(true)
    }

    /// Polls the files every `interval` until the returned task is dropped/aborted.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        interval: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.cert.as_ref()?;
        let me = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match me.reload_if_changed() {
                    Ok(true) => tracing::info!("TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate changed but cannot be loaded; keeping the previous one")
                    }
                }
            }
        }))
    }
}

fn builder() -> rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier> {
    // The ring provider's default suites are the modern AEAD ones only (AES-GCM,
    // ChaCha20-Poly1305 with ECDHE); TLS 1.0/1.1 are not implemented by rustls at all.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap_or_else(|_| ServerConfig::builder())
}

/// A usable configuration and the notAfter of its certificate.
struct Loaded {
    config: ServerConfig,
    /// Unix seconds; 0 when the certificate cannot be parsed as X.509 (rustls may still
    /// accept it: the metric then says "unknown" rather than stopping the server).
    not_after: i64,
}

/// notAfter of the leaf (first) certificate.
fn not_after(leaf: &CertificateDer<'_>) -> i64 {
    match x509_parser::parse_x509_certificate(leaf.as_ref()) {
        Ok((_, cert)) => cert.validity().not_after.timestamp(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the certificate's expiry date");
            0
        }
    }
}

fn load_config(cert: &Source, key: &Source) -> Result<Loaded, TlsError> {
    let (cert_pem, cert_origin) = cert.read("certificate")?;
    let (key_pem, key_origin) = key.read("private key")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::BadPem {
            what: "certificate",
            origin: cert_origin.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what: "certificate",
            origin: cert_origin,
            expected: "CERTIFICATE block",
        });
    }
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoPem {
                what: "private key",
                origin: key_origin,
                expected: "PRIVATE KEY block",
            });
        }
        Err(source) => {
            return Err(TlsError::BadPem {
                what: "private key",
                origin: key_origin,
                source,
            });
        }
    };
    let not_after = certs.first().map(not_after).unwrap_or(0);
    Ok(Loaded {
        config: finish(certs, key)?,
        not_after,
    })
}

fn finish(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, TlsError> {
    // One certificate whatever SNI name the client sends: the OpenShift router and nginx
    // pass the route host, which need not be a name we know.
    let mut config = builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = Vec::new();
    Ok(config)
}

/// A self-signed certificate for `names`, as PEM (certificate, key).
pub fn generate_self_signed(names: &[String]) -> Result<(String, String), TlsError> {
    let names: Vec<String> = if names.is_empty() {
        vec!["localhost".to_string()]
    } else {
        names.to_vec()
    };
    let certified = rcgen::generate_simple_self_signed(names)?;
    Ok((certified.cert.pem(), certified.key_pair.serialize_pem()))
}

fn self_signed_config(names: &[String]) -> Result<Loaded, TlsError> {
    let (cert, key) = generate_self_signed(names)?;
    load_config(&Source::Inline(cert), &Source::Inline(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_and_inline_pem() {
        let p = TlsProvider::new("", "", &["mx.example".into()]).unwrap();
        assert!(p.self_signed);
        let (cert, key) = generate_self_signed(&["a.example".into()]).unwrap();
        let p = TlsProvider::new(&cert, &key, &[]).unwrap();
        assert!(!p.self_signed);
        assert!(!p.reload_if_changed().unwrap());
    }

    #[test]
    fn bad_files_are_named() {
        let e = TlsProvider::new("/nonexistent/cert.pem", "/nonexistent/key.pem", &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.pem");
        std::fs::write(&c, "not pem").unwrap();
        let e = TlsProvider::new(c.to_str().unwrap(), c.to_str().unwrap(), &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no PEM"), "{e}");
    }

    #[test]
    fn empty_files_are_an_error_not_a_self_signed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, "").unwrap();
        std::fs::write(&k, "\n").unwrap();
        let e = TlsProvider::new(
            c.to_str().unwrap(),
            k.to_str().unwrap(),
            &["a.example".into()],
        )
        .err()
        .expect("empty certificate files refused")
        .to_string();
        assert!(
            e.contains(c.to_str().unwrap()) && e.contains("are empty"),
            "{e}"
        );
        // One of the two empty: the pair cannot be used either.
        let (cert, _) = generate_self_signed(&["b.example".into()]).unwrap();
        std::fs::write(&c, &cert).unwrap();
        let e = TlsProvider::new(c.to_str().unwrap(), k.to_str().unwrap(), &[])
            .err()
            .expect("an empty key file refused")
            .to_string();
        assert!(e.contains("no PEM PRIVATE KEY"), "{e}");
    }

    #[test]
    fn expiry_is_the_certificates_not_after_and_follows_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 3, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&c, params.clone().self_signed(&key).unwrap().pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let gauge = Gauge::default();
        let p = TlsProvider::new(c.to_str().unwrap(), k.to_str().unwrap(), &[])
            .unwrap()
            .with_expiry_gauge(gauge.clone());
        // 2031-03-04T00:00:00Z
        assert_eq!(gauge.get(), 1_930_348_800);
        params.not_after = rcgen::date_time_ymd(2032, 1, 1);
        std::fs::write(&c, params.clone().self_signed(&key).unwrap().pem()).unwrap();
        let f = std::fs::File::options().write(true).open(&c).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert!(p.reload_if_changed().unwrap());
        assert_eq!(
            gauge.get(),
            1_956_528_000,
            "2032-01-01T00:00:00Z after reload"
        );
        assert_eq!(p.not_after(), gauge.get());
        let s = TlsProvider::new("", "", &["x.example".into()]).unwrap();
        assert!(
            s.not_after() > 1_900_000_000,
            "self-signed has a real notAfter too"
        );
    }

    #[test]
    fn reload_picks_up_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let (cert, key) = generate_self_signed(&["a.example".into()]).unwrap();
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        let p = TlsProvider::new(c.to_str().unwrap(), k.to_str().unwrap(), &[]).unwrap();
        let (cert2, key2) = generate_self_signed(&["b.example".into()]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&c, &cert2).unwrap();
        std::fs::write(&k, &key2).unwrap();
        let mtime = SystemTime::now() + Duration::from_secs(5);
        let f = std::fs::File::options().write(true).open(&c).unwrap();
        f.set_modified(mtime).unwrap();
        assert!(p.reload_if_changed().unwrap());
        std::fs::write(&k, "broken").unwrap();
        let f = std::fs::File::options().write(true).open(&k).unwrap();
        f.set_modified(mtime + Duration::from_secs(5)).unwrap();
        assert!(p.reload_if_changed().is_err());
    }
}
