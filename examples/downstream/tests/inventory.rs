//! The generated client against a real loopback server (wiremock): made in
//! one line from a configuration, sharing its token cache, its requests
//! pinned with insta; a token failure comes back typed.

use m2m::config::Config;
use m2m::test_util::RequestShape;
use m2m_downstream_example::inventory::{self, types};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ITEM_ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

/// A configuration whose client `inventory` gets its tokens from, and
/// calls, `server`.
fn config(server: &MockServer, test: &str) -> Config {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "inventory-secret").unwrap();
    let text = format!(
        r#"
        [clients.inventory]
        provider = "custom"
        token_url = "{uri}/oauth2/token"
        api_base_url = "{uri}"
        client_id = "inventory-service"
        client_secret_file = "{secret}"
        scopes = ["inventory.read", "inventory.write"]
        allow_http = true
        "#,
        uri = server.uri(),
        secret = secret.display(),
    );
    Config::parse(&text, "m2m.toml").unwrap()
}

async fn token_endpoint(server: &MockServer, status: u16, body: serde_json::Value) {
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn clients_from_one_configuration_share_one_token_and_send_the_documented_requests() {
    let server = MockServer::start().await;
    token_endpoint(
        &server,
        200,
        json!({"access_token": "inventory-token", "token_type": "Bearer", "expires_in": 3600}),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("/items/{ITEM_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "itemId": ITEM_ID, "name": "Pallet jack", "quantity": 3, "sku": "PLT-0042"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/reservations"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"itemId": ITEM_ID, "quantity": 2, "note": "dock 4"})),
        )
        .mount(&server)
        .await;
    let config = config(&server, "shared");

    // One line each, and two clients: one token request between them.
    let reader = inventory::Client::from_config(&config, "inventory").unwrap();
    let writer = inventory::Client::from_config(&config, "inventory").unwrap();
    let item = reader
        .get_item()
        .item_id(ITEM_ID.parse::<m2m::__private::uuid::Uuid>().unwrap())
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(item.name, "Pallet jack");
    assert_eq!(item.sku.as_ref().map(|sku| sku.as_str()), Some("PLT-0042"));
    let reservation = writer
        .reserve_item()
        .dry_run(true)
        .body(
            types::Reservation::builder()
                .item_id(item.item_id)
                .quantity(std::num::NonZeroU64::new(2).unwrap())
                .note("dock 4".to_owned()),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reservation.note.as_deref(), Some("dock 4"));

    let received = server.received_requests().await.unwrap();
    let tokens = received
        .iter()
        .filter(|request| request.url.path() == "/oauth2/token")
        .count();
    assert_eq!(
        tokens, 1,
        "two clients of one configuration share the token"
    );
    let calls: Vec<RequestShape> = received
        .iter()
        .filter(|request| request.url.path() != "/oauth2/token")
        .map(RequestShape::of)
        .collect();
    insta::assert_json_snapshot!("inventory_requests", calls);
}

#[tokio::test]
async fn a_token_failure_is_one_typed_error_without_the_client() {
    let server = MockServer::start().await;
    token_endpoint(
        &server,
        401,
        json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
    )
    .await;
    let config = config(&server, "failure");
    let error = inventory::Client::from_config(&config, "inventory")
        .unwrap()
        .get_item()
        .item_id(ITEM_ID.parse::<m2m::__private::uuid::Uuid>().unwrap())
        .send()
        .await
        .unwrap_err();

    let auth = m2m::auth_error(&error).expect("a token failure");
    assert_eq!(auth.status().map(|status| status.as_u16()), Some(401));
    assert!(auth.to_string().contains("invalid_client"), "{auth}");
}
