//! An HTTPS front on loopback for the sandbox: azure_identity refuses an
//! `http` authority host, so its requests go through TLS terminated here
//! (a certificate for 127.0.0.1 made at start with rcgen) and are passed on
//! byte for byte to the sandbox's plain-HTTP port.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

/// A running front: where it listens and the certificate to trust.
pub struct TlsFront {
    /// `https://127.0.0.1:{port}`.
    pub base_url: String,
    /// The self-signed certificate (DER) a client must trust.
    pub certificate: Vec<u8>,
}

/// Starts the front on the current runtime, forwarding to `backend`.
pub async fn start(backend: SocketAddr) -> TlsFront {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("rcgen makes a certificate");
    let certificate = certified.cert.der().to_vec();
    let key = pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("the certificate fits the key");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the TLS front");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = plain.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsFront {
        base_url: format!("https://{address}"),
        certificate,
    }
}
