//! TLS for the SMTP listeners: the server certificate (configured PEM, or a self-signed one
//! made at start), TLS 1.2/1.3 with the provider's modern suites only, and re-reading the
//! certificate files when they change so a rotated certificate is served without a restart.
//!
//! Handshakes in flight keep the configuration they started with; only new handshakes see
//! a reloaded one.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

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
}

impl TlsProvider {
    /// Loads `cert`/`key` (PEM text or file paths); when both are empty, makes a self-signed
    /// certificate for `names`.
    pub fn new(cert: &str, key: &str, names: &[String]) -> Result<TlsProvider, TlsError> {
        if cert.is_empty() && key.is_empty() {
            let config = self_signed_config(names)?;
            return Ok(TlsProvider {
                current: RwLock::new(Arc::new(config)),
                cert: None,
                key: None,
                stamps: RwLock::new((None, None)),
                self_signed: true,
            });
        }
        let cert = Source::parse(cert);
        let key = Source::parse(key);
        let stamps = (cert.modified(), key.modified());
        // Empty files are a certificate not provisioned yet (an empty Secret that
        // cert-manager fills later): serve a self-signed one until the files change.
        let (config, self_signed) = if cert.is_empty_file() && key.is_empty_file() {
            (self_signed_config(names)?, true)
        } else {
            (load_config(&cert, &key)?, false)
        };
        Ok(TlsProvider {
            current: RwLock::new(Arc::new(config)),
            cert: Some(cert),
            key: Some(key),
            stamps: RwLock::new(stamps),
            self_signed,
        })
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
        let config = load_config(cert, key)?;
        if let Ok(mut g) = self.current.write() {
            *g = Arc::new(config);
        }
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

fn load_config(cert: &Source, key: &Source) -> Result<ServerConfig, TlsError> {
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
    finish(certs, key)
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

fn self_signed_config(names: &[String]) -> Result<ServerConfig, TlsError> {
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
    fn empty_files_serve_self_signed_until_filled() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, "").unwrap();
        std::fs::write(&k, "").unwrap();
        let p = TlsProvider::new(
            c.to_str().unwrap(),
            k.to_str().unwrap(),
            &["a.example".into()],
        )
        .unwrap();
        assert!(p.self_signed);
        let (cert, key) = generate_self_signed(&["b.example".into()]).unwrap();
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        let mtime = SystemTime::now() + Duration::from_secs(5);
        for f in [&c, &k] {
            let f = std::fs::File::options().write(true).open(f).unwrap();
            f.set_modified(mtime).unwrap();
        }
        assert!(p.reload_if_changed().unwrap());
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
