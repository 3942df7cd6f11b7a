//! `m2m call` as a user runs it: per-operation help, refusals that send
//! nothing (exit 2), API failures told as `METHOD URL → STATUS: message`
//! (exit 1), the request being exactly the typed client's, and no secret
//! or token in any output.

use std::time::Duration;

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[path = "support/cli.rs"]
mod cli;

use cli::{SECRET, TOKEN, args, client_flags, m2m, requests_to, run, token_server};
use m2m::test_util::assert_no_secret;

const ORGANISATION: &str = "6f1c3e5a-0000-4000-8000-000000000001";

const TRANSACTION: &str = r#"{"accountNumber":"000123456789","routingNumber":"021000021","amount":10,"currency":"USD","transactionType":"Debit","reference":"CLI-1","memo":null}"#;

/// `m2m call <client flags> OPERATION extra…` against `api`, tokens from
/// `tokens`.
async fn call(tokens: &MockServer, api: &MockServer, operation: &str, extra: &[&str]) -> cli::Run {
    let mut all = args(&["call", "-", operation]);
    all.extend(client_flags(tokens, &api.uri()));
    all.extend(args(extra));
    let result = run(all).await;
    assert_no_secret("call output", &result.output());
    assert!(!result.output().contains(SECRET), "{}", result.output());
    assert!(!result.output().contains(TOKEN), "{}", result.output());
    result
}

#[test]
fn operation_help_lists_parameters_body_fields_and_an_example() {
    let help = m2m(&["call", "nxtsoft", "postTransaction", "--help"], &[]);
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    let out = &help.stdout;
    assert!(
        out.starts_with("postTransaction — Post a transaction"),
        "{out}"
    );
    assert!(out.contains("POST /transactions"), "{out}");
    assert!(
        out.contains("Idempotency-Key  header  string  optional"),
        "{out}"
    );
    assert!(
        out.contains("accountNumber     string (pattern ^[0-9]{4,17}$)  required"),
        "{out}"
    );
    assert!(
        out.contains("transactionType   one of: Debit, Credit           required"),
        "{out}"
    );
    assert!(out.contains("Example body:"), "{out}");
    assert!(out.contains("\"routingNumber\": \"021000021\""), "{out}");
    assert!(
        !out.contains("--account-number"),
        "no kebab-case flags: {out}"
    );

    let short = m2m(&["call", "-", "getOrganisation", "-h"], &[]);
    assert_eq!(short.code, Some(0));
    assert!(
        short.stdout.contains("organisationId  path  string"),
        "{}",
        short.stdout
    );
    let unknown = m2m(&["call", "-", "listOrganizations", "--help"], &[]);
    assert_eq!(unknown.code, Some(2));
    assert!(
        unknown
            .error_line()
            .contains("did you mean listOrganisations?")
    );

    let generic = m2m(&["call", "--help"], &[]);
    assert_eq!(generic.code, Some(0));
    assert!(generic.stdout.contains("Usage:"), "{}", generic.stdout);

    let list = m2m(&["call", "--list"], &[]);
    assert_eq!(list.code, Some(0));
    let line = list
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("postTransaction "))
        .unwrap();
    assert!(
        line.contains("Idempotency-Key body:TransactionRequest*"),
        "{line}"
    );
    assert!(line.contains("Post a transaction"), "{line}");
    let get = list
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("getOrganisation "))
        .unwrap();
    assert!(get.contains("organisationId*"), "{get}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_exit_2_with_one_line_and_send_nothing() {
    let tokens = token_server(Duration::ZERO).await;
    let api = MockServer::start().await;
    let dir = cli::tempdir("refusals");
    let body_file = |name: &str, text: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file.display().to_string()
    };
    let good = body_file("good.json", TRANSACTION);
    let typo = body_file(
        "typo.json",
        &TRANSACTION.replace("\"reference\"", "\"refrence\""),
    );
    let wrong_type = body_file("type.json", &TRANSACTION.replace("10,", "\"ten\","));
    let invalid = body_file("invalid.json", "{\"amount\": ");
    let missing = dir.join("missing.json").display().to_string();
    let id = format!("organisationId={ORGANISATION}");

    let cases: Vec<(&str, Vec<&str>, String)> = vec![
        (
            "getOrganisation",
            vec![],
            "getOrganisation needs the path parameter organisationId".into(),
        ),
        (
            "getOrganisation",
            vec!["--param", "organisationid=1", "--param", "bogus=1"],
            "getOrganisation has no parameter \"bogus\" (it takes: organisationId)".into(),
        ),
        (
            "getOrganisation",
            vec!["--param", "organisatonId=1"],
            "did you mean organisationId?".into(),
        ),
        (
            "listOrganizations",
            vec![],
            "operation \"listOrganizations\"; did you mean listOrganisations?".into(),
        ),
        (
            "postValidationMessage",
            vec!["--body", &typo],
            "the request body has an unknown field refrence; did you mean reference?".into(),
        ),
        (
            "postValidationMessage",
            vec!["--body", &good, "--param", "amount=5"],
            format!(
                "amount is a field of the request body of postValidationMessage: set it in {good}"
            ),
        ),
        (
            "postValidationMessage",
            vec!["--body", &invalid],
            format!("the request body in {invalid} is not valid JSON"),
        ),
        (
            "postValidationMessage",
            vec!["--body", &missing],
            format!("cannot read the body file {missing}"),
        ),
        (
            "postValidationMessage",
            vec!["--body", &wrong_type],
            "the request body field amount must be a number, not a string (\"ten\")".into(),
        ),
        (
            "postValidationMessage",
            vec![],
            "postValidationMessage needs a request body".into(),
        ),
        (
            "getOrganisation",
            vec!["--param", &id, "--body", &good],
            "getOrganisation takes no request body".into(),
        ),
        (
            "getOrganisation",
            vec!["--param", &id, "--param", "organisationId=again"],
            "--param organisationId is given more than once".into(),
        ),
    ];
    for (operation, extra, expected) in cases {
        let result = call(&tokens, &api, operation, &extra).await;
        assert_eq!(
            result.code,
            Some(2),
            "{operation} {extra:?}: {}",
            result.stderr
        );
        let line = result.error_line();
        assert!(
            line.contains(&expected),
            "{operation} {extra:?}:\n{line}\nexpected: {expected}"
        );
        assert!(
            !line.contains("--json-body") && !line.contains("--contact-email"),
            "{line}"
        );
        assert!(result.stdout.is_empty(), "{}", result.stdout);
    }

    // An operation of the other API, through a client whose provider
    // serves one API.
    let mut other = args(&[
        "call",
        "-",
        "getOrganisation",
        "--param",
        &id,
        "--provider",
        "nxtsoft",
        "--token-url",
        &format!("{}/token", tokens.uri()),
        "--client-id",
        "c",
        "--client-secret-env",
        cli::SECRET_VAR,
    ]);
    other.extend(args(&["--api-base-url", &api.uri()]));
    let result = run(other).await;
    assert_eq!(result.code, Some(2));
    assert!(
        result.error_line().ends_with(
            "getOrganisation is an operation of cenda-configuration, not of nxtsoft-transactions"
        ),
        "{}",
        result.stderr
    );

    assert_eq!(
        requests_to(&tokens, "/token").await,
        0,
        "no token was asked for"
    );
    assert!(
        api.received_requests().await.unwrap().is_empty(),
        "nothing reached the API"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_failures_say_method_url_status_and_the_servers_message() {
    let tokens = token_server(Duration::ZERO).await;
    let api = MockServer::start().await;
    let problem = serde_json::json!({
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.5",
        "title": "Not Found",
        "status": 404,
        "detail": "Organisation 6f1c3e5a was not found.",
        "extension": {"kept": true}
    });
    Mock::given(method("GET"))
        .and(path(format!("/api/Organisation/{ORGANISATION}")))
        .respond_with(
            ResponseTemplate::new(404)
                .insert_header("content-type", "application/problem+json")
                .set_body_json(&problem),
        )
        .mount(&api)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(
            ResponseTemplate::new(502)
                .insert_header("content-type", "text/html")
                .set_body_string(
                    "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                ),
        )
        .mount(&api)
        .await;
    Mock::given(method("POST"))
        .and(path("/transactions/mock"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("content-type", "application/json")
                .set_body_string(format!(
                    r#"{{"errors":{{"amount":["must be positive"]}},"echo":"Bearer {TOKEN}"}}"#
                )),
        )
        .mount(&api)
        .await;

    let id = format!("organisationId={ORGANISATION}");
    let not_found = call(&tokens, &api, "getOrganisation", &["--param", &id]).await;
    assert_eq!(not_found.code, Some(1), "{}", not_found.stderr);
    assert_eq!(
        not_found.error_line(),
        format!(
            "m2m: error: GET {}/api/Organisation/{ORGANISATION} → 404 Not Found: Organisation 6f1c3e5a was not found.",
            api.uri()
        )
    );
    let printed: serde_json::Value = serde_json::from_str(&not_found.stdout).unwrap();
    assert_eq!(
        printed, problem,
        "stdout has the body as the server sent it"
    );

    let gateway = call(&tokens, &api, "deleteOrganisation", &["--param", &id]).await;
    assert_eq!(gateway.code, Some(1));
    assert!(
        gateway
            .error_line()
            .ends_with("→ 502 Bad Gateway: 502 Bad Gateway"),
        "{}",
        gateway.stderr
    );
    assert!(gateway.stdout.is_empty(), "an HTML body is not printed");

    let dir = cli::tempdir("failures");
    let file = dir.join("t.json");
    std::fs::write(&file, TRANSACTION).unwrap();
    let invalid = call(
        &tokens,
        &api,
        "postValidationMessage",
        &["--body", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(invalid.code, Some(1));
    assert!(
        invalid
            .error_line()
            .ends_with("→ 400 Bad Request: amount: must be positive"),
        "{}",
        invalid.stderr
    );
    assert!(
        invalid.stdout.contains("\"echo\":\"Bearer [redacted]\""),
        "{}",
        invalid.stdout
    );
    for run in [&not_found, &gateway, &invalid] {
        for debug in [
            "Response {",
            "Invalid Response Payload",
            "Unexpected Response",
            "b\"<",
        ] {
            assert!(!run.output().contains(debug), "{}", run.output());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_api_times_out_and_says_so() {
    let tokens = token_server(Duration::ZERO).await;
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&api)
        .await;
    let started = std::time::Instant::now();
    let id = format!("organisationId={ORGANISATION}");
    let result = call(
        &tokens,
        &api,
        "getOrganisation",
        &["--param", &id, "--api-timeout-secs", "2"],
    )
    .await;
    assert_eq!(result.code, Some(1));
    assert_eq!(
        result.error_line(),
        format!(
            "m2m: error: GET {}/api/Organisation/{ORGANISATION} → timed out after 2 s, the api_timeout_secs limit (attempt 1 of 1)",
            api.uri()
        )
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// The same input through the typed client and through `m2m call` reaches
/// the server as the same request: method, path, query, headers (the
/// token, `api-version`, content type) and body bytes.
#[tokio::test(flavor = "multi_thread")]
async fn the_request_is_exactly_the_typed_clients() {
    use m2m::apis::nxtsoft_transactions::types;
    let tokens = token_server(Duration::ZERO).await;
    let via_cli = MockServer::start().await;
    let via_client = MockServer::start().await;
    for server in [&via_cli, &via_client] {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
                "transactionId": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
                "status": "Pending", "amount": 10.0, "currency": "USD",
                "createdAt": "2024-06-01T15:04:05Z"
            })))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .mount(server)
            .await;
    }
    let dir = cli::tempdir("exact");
    let file = dir.join("t.json");
    std::fs::write(&file, TRANSACTION).unwrap();
    let posted = call(
        &tokens,
        &via_cli,
        "postTransaction",
        &[
            "--body",
            file.to_str().unwrap(),
            "--param",
            "idempotency-key=K-1",
        ],
    )
    .await;
    assert_eq!(posted.code, Some(0), "{}", posted.stderr);
    let upper = ORGANISATION.to_uppercase();
    let got = call(
        &tokens,
        &via_cli,
        "getOrganisation",
        &["--param", &format!("organisationId={upper}")],
    )
    .await;
    // The answer is not an Organisation: the typed client could not read
    // it, the command prints it as it came.
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert_eq!(got.stdout.trim(), "{}");

    let auth = m2m::test_util::TestTokens::new(&[TOKEN]).auth();
    let nxtsoft = m2m::apis::nxtsoft_transactions::Client::new(&via_client.uri(), auth.clone());
    let body: types::TransactionRequest = serde_json::from_str(TRANSACTION).unwrap();
    nxtsoft
        .post_transaction()
        .idempotency_key("K-1")
        .body(body)
        .send()
        .await
        .unwrap();
    let cenda = m2m::apis::cenda_configuration::Client::new(&via_client.uri(), auth);
    let _ = cenda
        .get_organisation()
        .organisation_id(upper.as_str())
        .send()
        .await;

    let cli_requests = via_cli.received_requests().await.unwrap();
    let client_requests = via_client.received_requests().await.unwrap();
    assert_eq!(cli_requests.len(), 2);
    assert_eq!(client_requests.len(), 2);
    for (cli, client) in cli_requests.iter().zip(&client_requests) {
        assert_eq!(cli.method, client.method);
        assert_eq!(cli.url.path(), client.url.path());
        assert_eq!(cli.url.query(), client.url.query());
        assert_eq!(
            cli.body,
            client.body,
            "{}",
            String::from_utf8_lossy(&cli.body)
        );
        let names = |request: &wiremock::Request| {
            let mut names: Vec<String> = request
                .headers
                .keys()
                .map(|name| name.as_str().to_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(cli), names(client));
        for (name, value) in &client.headers {
            if name != "host" {
                assert_eq!(cli.headers.get(name), Some(value), "{name}");
            }
        }
    }
    assert_eq!(cli_requests[0].headers["idempotency-key"], "K-1");
    assert_eq!(cli_requests[0].headers["api-version"], "1.0");
    // The identifier as the typed client writes it (a UUID in lower case).
    assert_eq!(cli_requests[1].url.path(), client_requests[1].url.path());
    let sent: serde_json::Value = serde_json::from_slice(&cli_requests[0].body).unwrap();
    assert!(sent.get("memo").is_none(), "an optional null is left out");
    assert_eq!(sent["amount"], serde_json::json!(10.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_is_renewed_once_and_vv_shows_each_request_without_colour() {
    let tokens = token_server(Duration::ZERO).await;
    let api = MockServer::start().await;
    Mock::given(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", r#"Bearer error="invalid_token""#),
        )
        .mount(&api)
        .await;
    let id = format!("organisationId={ORGANISATION}");
    let mut all = args(&["-vv", "call", "-", "getOrganisation", "--param", &id]);
    all.extend(client_flags(&tokens, &api.uri()));
    let result = run(all).await;
    assert_eq!(result.code, Some(1), "{}", result.stderr);
    assert_eq!(requests_to(&tokens, "/token").await, 2, "renewed once");
    assert_eq!(
        api.received_requests().await.unwrap().len(),
        2,
        "sent twice, not more"
    );
    let error = result
        .stderr
        .lines()
        .find(|line| line.starts_with("m2m: error: "))
        .unwrap();
    assert!(error.contains("→ 401 Unauthorized"), "{error}");
    let logged: Vec<&str> = result
        .stderr
        .lines()
        .filter(|line| line.contains("API request"))
        .collect();
    assert_eq!(logged.len(), 2, "{}", result.stderr);
    assert!(logged[0].contains("method=GET"), "{}", logged[0]);
    assert!(logged[0].contains("/api/Organisation/"), "{}", logged[0]);
    assert!(logged[0].contains("status=401"), "{}", logged[0]);
    assert!(
        !result.stderr.contains('\u{1b}'),
        "no colour codes in a pipe"
    );
    assert_no_secret("-vv stderr", &result.stderr);
    assert!(!result.stderr.contains(TOKEN));
}
