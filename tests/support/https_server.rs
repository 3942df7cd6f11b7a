//! An HTTPS server on 127.0.0.1 that answers every request with one fixed
//! raw HTTP response and counts the requests: the origin a redirect to plain
//! http starts from. Its certificate (`tests/fixtures/loopback-*.pem`) is
//! signed by [`HttpsServer::ca`].
//!
//! Include it with `#[path = "support/https_server.rs"] mod https_server;`.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const CA: &str = include_str!("../fixtures/loopback-ca.pem");
const CERTIFICATE: &str = include_str!("../fixtures/loopback-server-cert.pem");
const KEY: &str = include_str!("../fixtures/loopback-server-key.pem");

/// A running server; it stops with the test's runtime.
pub struct HttpsServer {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl HttpsServer {
    /// Starts a server that answers every request with `answer`, a whole
    /// HTTP/1.1 response (status line, headers, blank line, body).
    pub async fn answering(answer: String) -> Self {
        let der = |text: &str| pem::parse(text).expect("a PEM fixture").into_contents();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der(KEY)));
        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(der(CERTIFICATE))], key)
        .expect("the fixture certificate and key");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, answer, counted) =
                    (acceptor.clone(), answer.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut stream = BufReader::new(stream);
                    let mut line = String::new();
                    // The request head, up to its blank line.
                    loop {
                        line.clear();
                        match stream.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let mut stream = stream.into_inner();
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { port, requests }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// How many requests it answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The CA its certificate chains to.
    pub fn ca() -> reqwest::Certificate {
        reqwest::Certificate::from_pem(CA.as_bytes()).expect("the CA fixture")
    }
}
