//! The floor server for B1: the least an HTTP/1 server on loopback can do
//! for `GET /api/Organisation/{id}` (Cenda's `getOrganisation`): a fixed,
//! small JSON body valid for the generated `Organisation` type, no token
//! check. Whatever a client adds per call is then not hidden by the server.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::http::header;
use axum::routing::get;

/// A Cenda organisation, as `getOrganisation` returns it.
pub const ORGANISATION: &str = r#"{"organisationId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","name":"Acme Corporation","cssUrl":"https://www.acme.example/cenda/qr-page.css","roundLogo":"https://www.acme.example/assets/round-logo.png","validated":true}"#;

/// The organisation id the benchmark asks for.
pub const ORGANISATION_ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

async fn organisation() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], ORGANISATION)
}

/// Starts the floor server on a free loopback port of the current runtime;
/// returns its base URL.
pub async fn start() -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("a free loopback port");
    let address = listener.local_addr().expect("bound");
    let router = Router::new().route("/api/Organisation/{id}", get(organisation));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}")
}
