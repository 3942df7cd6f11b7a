//! The `m2m` command as a user runs it: exit codes, one-line errors, the
//! demo, the committed JSON Schema, and no secret in any output even at
//! TRACE.

use std::path::Path;
use std::process::{Command, Output};

use m2m::sandbox::{Sandbox, demo};
use m2m::test_util::assert_no_secret;

#[path = "../../tests/support/oidc_provider.rs"]
mod oidc_provider;

const M2M: &str = env!("CARGO_BIN_EXE_m2m");

fn m2m(args: &[&str]) -> Output {
    m2m_with_env(args, &[])
}

fn m2m_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(M2M);
    command
        .args(args)
        .env_remove("M2M_CONFIG")
        .env_remove("RUST_LOG")
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the m2m binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn one_line(text: &str) -> &str {
    let trimmed = text.trim_end();
    assert_eq!(
        trimmed.lines().count(),
        1,
        "expected one line, got:\n{text}"
    );
    trimmed
}

#[test]
fn demo_runs_every_step_and_prints_no_secret_even_at_trace() {
    let output = m2m(&["-vv", "demo", "--show-config"]);
    let out = stdout(&output);
    let err = stderr(&output);
    assert!(output.status.success(), "demo failed:\n{out}\n{err}");
    assert!(out.contains("19/19 steps passed"), "{out}");
    // Cenda's onboarding in the vendor's order, in the steps and the summary.
    let steps = [
        "token, cenda style",
        "createOrganisation",
        "validateOrganisation",
        "createCredentialTemplate (Issuance)",
        "createCredentialTemplate (Verification)",
        "listCredentialTemplates",
        "issue a credential (sandbox)",
        "revokeCredential",
        "postValidationMessage (Bearer)",
        "postValidationMessage (DPoP)",
        "postValidationMessage (Bearer, mutual TLS)",
    ];
    let summary = out.find("\nSummary").expect("a summary");
    for part in [&out[..summary], &out[summary..]] {
        let positions: Vec<usize> = steps
            .iter()
            .map(|step| {
                part.find(step)
                    .unwrap_or_else(|| panic!("no {step} in:\n{out}"))
            })
            .collect();
        assert!(positions.is_sorted(), "steps out of order:\n{out}");
    }
    for provider in ["nxtport", "cenda", "nxtsoft", "sequel", "apiture", "custom"] {
        assert!(out.contains(&format!("token, {provider} style")), "{out}");
    }
    // A federated client too: a workload token, no secret.
    assert!(
        out.contains("token, cenda style, federated (a workload token, no secret)"),
        "{out}"
    );
    // The DPoP client: its token request and API call show the scheme and
    // that a proof goes along, never the proof.
    assert!(out.contains("token, sequel style (DPoP)"), "{out}");
    assert!(out.contains("DPoP: [proof redacted]"), "{out}");
    assert!(out.contains("Authorization: DPoP [redacted]"), "{out}");
    // The mutual-TLS client: its certificate on the token request and the
    // API call, over the sandbox's HTTPS listener.
    assert!(out.contains("token, custom style (mutual TLS)"), "{out}");
    assert!(
        out.contains("(client certificate on the TLS connection)"),
        "{out}"
    );
    assert!(out.contains("auth = \"tls-client-auth\""), "{out}");
    // Nine clients, ten token requests (the DPoP client's first one is
    // answered use_dpop_nonce): API calls reuse the cached tokens.
    assert!(out.contains("the sandbox saw 10 token requests"), "{out}");
    assert!(
        err.contains("TRACE") || err.contains("DEBUG"),
        "-vv shows tracing:\n{err}"
    );
    assert_no_secret("demo stdout", &out);
    assert_no_secret("demo stderr (TRACE)", &err);
}

#[test]
fn every_command_has_help() {
    for command in [
        vec!["--help"],
        vec!["providers", "--help"],
        vec!["token", "--help"],
        vec!["call", "--help"],
        vec!["sandbox", "--help"],
        vec!["demo", "--help"],
        vec!["schema", "--help"],
        vec!["completions", "--help"],
        vec!["config", "check", "--help"],
    ] {
        let output = m2m(&command);
        assert!(output.status.success(), "{command:?}: {}", stderr(&output));
        assert!(stdout(&output).contains("Usage:"), "{command:?}");
    }
}

/// The sender-constrained token flags of the configuration reach the
/// command (their `clap` attributes once named a feature that is gone).
#[test]
fn token_help_lists_the_dpop_and_mtls_flags() {
    let output = m2m(&["token", "--help"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let help = stdout(&output);
    for flag in [
        "--dpop",
        "--dpop-key-file",
        "--dpop-allow-bearer",
        "--tls-certificate-file",
        "--tls-key-file",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
}

#[test]
fn providers_lists_every_variant() {
    let output = m2m(&["providers"]);
    assert!(output.status.success());
    let out = stdout(&output);
    for name in ["nxtport", "nxtsoft", "cenda", "sequel", "apiture", "custom"] {
        assert!(
            out.contains(&format!("\n  {name}\n")),
            "{name} missing:\n{out}"
        );
    }
    assert!(
        out.contains("https://auth.nxtsoft.com/oauth2/token"),
        "{out}"
    );
}

#[test]
fn the_committed_schema_is_what_the_code_prints() {
    let output = m2m(&["schema"]);
    assert!(output.status.success());
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../m2m.schema.json"))
            .expect("m2m.schema.json is committed");
    assert_eq!(
        stdout(&output),
        committed,
        "m2m.schema.json is stale: run `cargo run -- schema > m2m.schema.json`"
    );
}

#[test]
fn a_bad_config_exits_2_with_one_line_naming_the_key_and_line() {
    let dir = tempdir("bad-config");
    let file = dir.join("m2m.toml");
    std::fs::write(
        &file,
        "[clients.cenda]\nprovider = \"cenda\"\nclient_secret = \"inline\"\n",
    )
    .unwrap();
    let output = m2m(&["token", "cenda", "--config", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let line = one_line(&stderr(&output)).to_owned();
    assert!(line.contains("m2m.toml:3:1"), "{line}");
    assert!(line.contains("unknown field `client_secret`"), "{line}");
    assert!(!line.contains("inline"), "the value is not echoed: {line}");

    let wrong_type = dir.join("types.toml");
    std::fs::write(&wrong_type, "[cache]\nmax_entries = \"lots\"\n").unwrap();
    let output = m2m(&["providers", "--config", wrong_type.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "providers does not read the config"
    );
    let output = m2m(&["token", "x", "--config", wrong_type.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(one_line(&stderr(&output)).contains("types.toml:2:"));
}

#[test]
fn usage_errors_exit_2() {
    let unknown = m2m(&["token", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(one_line(&stderr(&unknown)).contains("no client named \"nope\""));

    let missing_env = m2m(&[
        "token",
        "--provider",
        "nxtsoft",
        "--client-id",
        "id",
        "--client-secret-env",
        "M2M_TEST_UNSET_VAR",
    ]);
    assert_eq!(missing_env.status.code(), Some(2));
    assert!(one_line(&stderr(&missing_env)).contains("M2M_TEST_UNSET_VAR, which is not set"));

    let http = m2m_with_env(
        &[
            "token",
            "--provider",
            "custom",
            "--token-url",
            "http://192.0.2.1/token",
            "--client-id",
            "id",
            "--client-secret-env",
            "M2M_TEST_SECRET",
        ],
        &[("M2M_TEST_SECRET", "wrong-secret-0f9e8d")],
    );
    assert_eq!(http.status.code(), Some(2), "{}", stderr(&http));
    assert!(one_line(&stderr(&http)).contains("refusing to send credentials over plain http"));

    let show = m2m(&["token", "--format", "header", "--provider", "nxtsoft"]);
    assert_eq!(show.status.code(), Some(2));
    assert!(one_line(&stderr(&show)).contains("--show-token"));

    let clap_error = m2m(&["token", "--auth", "telepathy"]);
    assert_eq!(clap_error.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn token_and_call_by_flags_alone_against_the_sandbox() {
    let sandbox = Sandbox::start().await.unwrap();
    let token_url = sandbox.cognito_token_url();
    let api_url = sandbox.nxtsoft_api_url();
    let flags = |secret_var: &'static str| -> Vec<String> {
        [
            "--provider",
            "custom",
            "--token-url",
            &token_url,
            "--client-id",
            demo::COGNITO_CLIENT_ID,
            "--client-secret-env",
            secret_var,
            "--scope",
            "transactions/mock transactions/post",
            "--auth",
            "post",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let run = |args: Vec<String>, env: Vec<(&'static str, &'static str)>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            m2m_with_env(&args, &env)
        })
    };

    let mut args = vec!["-vv".to_owned(), "token".to_owned()];
    args.extend(flags("M2M_TEST_SECRET"));
    let ok = run(args, vec![("M2M_TEST_SECRET", demo::COGNITO_CLIENT_SECRET)])
        .await
        .unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    let summary: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(summary["client"], "command-line");
    assert_eq!(summary["provider"], "custom");
    assert_eq!(summary["token_type"], "Bearer");
    assert_eq!(summary["cached"], false);
    assert_eq!(
        summary["scopes"],
        serde_json::json!(["transactions/mock", "transactions/post"])
    );
    assert!(
        summary.get("access_token").is_none(),
        "no token without --show-token"
    );
    assert!(summary["expires_in"].as_u64().unwrap() > 3000);
    assert_no_secret("token stdout", &stdout(&ok));
    assert_no_secret("token stderr (TRACE)", &stderr(&ok));

    let mut args = vec!["-vv".to_owned(), "token".to_owned()];
    args.extend(flags("M2M_TEST_SECRET"));
    let wrong = run(args, vec![("M2M_TEST_SECRET", "wrong-secret-0f9e8d")])
        .await
        .unwrap();
    assert_eq!(
        wrong.status.code(),
        Some(1),
        "a refused secret is a remote failure"
    );
    let err = stderr(&wrong);
    let last = err
        .lines()
        .find(|line| line.starts_with("m2m: error:"))
        .unwrap_or_default();
    assert!(
        last.starts_with("m2m: error: client \"command-line\""),
        "{last}"
    );
    assert!(last.contains("invalid_client"), "{last}");
    assert_no_secret("failed token stderr (TRACE)", &err);
    assert!(!err.contains("wrong-secret-0f9e8d"), "{err}");

    let mut args = vec![
        "call".to_owned(),
        "-".to_owned(),
        "postValidationMessage".to_owned(),
    ];
    args.extend(flags("M2M_TEST_SECRET"));
    args.extend(
        [
            "--api-base-url",
            &api_url,
            "--param",
            "accountNumber=000123456789",
            "--param",
            "routingNumber=021000021",
            "--param",
            "amount=10.5",
            "--param",
            "currency=USD",
            "--param",
            "transactionType=Debit",
            "--param",
            "reference=CLI-1",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    let call = run(args, vec![("M2M_TEST_SECRET", demo::COGNITO_CLIENT_SECRET)])
        .await
        .unwrap();
    assert!(call.status.success(), "{}", stderr(&call));
    let result: serde_json::Value = serde_json::from_slice(&call.stdout).unwrap();
    assert_eq!(result["status"], "Valid", "{result}");
    assert_eq!(sandbox.stats().nxtsoft_api_requests, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dpop_token_and_call_print_no_secret_key_proof_or_token_even_at_trace() {
    let sandbox = Sandbox::start().await.unwrap();
    let flags: Vec<String> = [
        "--provider",
        "sequel",
        "--authentication-server-url",
        &sandbox.sequel_authentication_server_url(),
        "--client-id",
        demo::DPOP_CLIENT_ID,
        "--client-secret-env",
        "M2M_TEST_SECRET",
        "--scope",
        "transactions/mock",
        "--dpop",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            m2m_with_env(&args, &[("M2M_TEST_SECRET", demo::DPOP_CLIENT_SECRET)])
        })
    };

    let mut args = vec!["-vv".to_owned(), "token".to_owned()];
    args.extend(flags.clone());
    let token = run(args).await.unwrap();
    assert!(token.status.success(), "{}", stderr(&token));
    let summary: serde_json::Value = serde_json::from_slice(&token.stdout).unwrap();
    assert_eq!(summary["token_type"], "DPoP", "{summary}");
    assert_no_secret("--dpop token stdout", &stdout(&token));
    assert_no_secret("--dpop token stderr (TRACE)", &stderr(&token));

    let mut args = vec![
        "-vv".to_owned(),
        "call".to_owned(),
        "-".to_owned(),
        "postValidationMessage".to_owned(),
        "--api-base-url".to_owned(),
        sandbox.nxtsoft_api_url(),
    ];
    args.extend(flags);
    for (name, value) in [
        ("accountNumber", "000123456789"),
        ("routingNumber", "021000021"),
        ("amount", "10.5"),
        ("currency", "USD"),
        ("transactionType", "Debit"),
        ("reference", "CLI-DPOP-1"),
    ] {
        args.extend(["--param".to_owned(), format!("{name}={value}")]);
    }
    let call = run(args).await.unwrap();
    assert!(call.status.success(), "{}", stderr(&call));
    let result: serde_json::Value = serde_json::from_slice(&call.stdout).unwrap();
    assert_eq!(result["status"], "Valid", "{result}");
    assert_no_secret("--dpop call stdout", &stdout(&call));
    assert_no_secret("--dpop call stderr (TRACE)", &stderr(&call));
    // Two token requests per run (the nonce), each run a fresh key.
    let stats = sandbox.stats();
    assert_eq!((stats.tokens_issued, stats.nxtsoft_api_requests), (2, 1));
}

/// A certificate made here (rcgen, P-256) and its PKCS#8 key, as PEM.
struct TestCertificate {
    der: Vec<u8>,
    pem: String,
    key_pem: String,
}

fn test_pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

fn test_dn(common_name: &str) -> rcgen::DistinguishedName {
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, "m2m tests");
    name.push(rcgen::DnType::CommonName, common_name);
    name
}

/// A certificate for `subject_alt_names` with `purpose`, issued by `ca`.
fn issue(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    common_name: &str,
    subject_alt_names: Vec<String>,
    purpose: rcgen::ExtendedKeyUsagePurpose,
) -> TestCertificate {
    let mut params = rcgen::CertificateParams::new(subject_alt_names).unwrap();
    params.distinguished_name = test_dn(common_name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![purpose];
    let key = rcgen::KeyPair::generate().expect("a P-256 key");
    let certificate = params.signed_by(&key, ca).expect("a certificate");
    TestCertificate {
        der: certificate.der().to_vec(),
        pem: test_pem("CERTIFICATE", certificate.der()),
        key_pem: test_pem("PRIVATE KEY", &key.serialize_der()),
    }
}

/// `m2m -vv token` with mutual TLS (RFC 8705 `tls_client_auth`) against
/// oidc-provider over HTTPS, the client certificate and key in files as a
/// user has them: a certificate-bound token comes, and neither output shows
/// the private key (its PEM or any 16 characters of its base64) or the
/// access token, even at TRACE.
#[tokio::test(flavor = "multi_thread")]
async fn an_mtls_token_prints_no_private_key_or_token_even_at_trace() {
    use base64::Engine as _;
    use oidc_provider::{API_RESOURCE, ClientSpec, OidcProvider, ProviderOptions, ProviderTls};

    const CLIENT_ID: &str = "cli-mtls-client";
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name = test_dn("m2m CLI test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(
        ca_params,
        rcgen::KeyPair::generate().expect("a P-256 key"),
    )
    .expect("a CA certificate");
    let ca_pem = test_pem("CERTIFICATE", ca.der());
    let server = issue(
        &ca,
        "127.0.0.1",
        vec!["127.0.0.1".to_owned()],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = issue(
        &ca,
        "m2m-cli-mtls-client",
        Vec::new(),
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let options = ProviderOptions {
        tls: Some(ProviderTls {
            cert_pem: server.pem,
            key_pem: server.key_pem,
            ca_pem: ca_pem.clone(),
            mtls_alias: true,
        }),
        ..ProviderOptions::default()
    };
    let provider = OidcProvider::start_with(
        &[ClientSpec::tls_client_auth(
            CLIENT_ID,
            "CN=m2m-cli-mtls-client,O=m2m tests",
        )],
        &options,
    )
    .await;
    assert!(provider.issuer().starts_with("https://127.0.0.1:"));

    let dir = tempdir("mtls");
    let ca_file = dir.join("ca.pem");
    let certificate_file = dir.join("client.pem");
    let key_file = dir.join("client-key.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    std::fs::write(&certificate_file, &client.pem).unwrap();
    std::fs::write(&key_file, &client.key_pem).unwrap();
    let flags: Vec<String> = [
        "--provider",
        "custom",
        "--discovery-url",
        &provider.discovery_url(),
        "--client-id",
        CLIENT_ID,
        "--auth",
        "tls-client-auth",
        "--tls-certificate-file",
        &certificate_file.to_string_lossy(),
        "--tls-key-file",
        &key_file.to_string_lossy(),
        "--scope",
        "api:read",
        "--resource",
        API_RESOURCE,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // The command trusts the test CA the way a user with a private CA
    // makes it: SSL_CERT_FILE. reqwest 0.13's rustls verifier
    // (rustls-platform-verifier) loads the roots with rustls-native-certs,
    // which on Linux reads SSL_CERT_FILE (or SSL_CERT_DIR) instead of the
    // system store when it is set. No cache directory: every run fetches.
    let ca_file_text = ca_file.to_string_lossy().into_owned();
    let run = |extra: &[&str]| {
        let mut args = vec!["-vv".to_owned(), "token".to_owned()];
        args.extend(flags.clone());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let ca_file_text = ca_file_text.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            m2m_with_env(
                &args,
                &[("SSL_CERT_FILE", &ca_file_text), ("M2M_CACHE_DIR", "")],
            )
        })
    };

    let summary_run = run(&[]).await.unwrap();
    assert!(
        summary_run.status.success(),
        "{}\n{}",
        stderr(&summary_run),
        provider.logs()
    );
    let summary: serde_json::Value = serde_json::from_slice(&summary_run.stdout).unwrap();
    assert_eq!(summary["token_type"], "Bearer", "{summary}");
    assert_eq!(summary["client"], "command-line", "{summary}");

    let claims_run = run(&["--format", "claims"]).await.unwrap();
    assert!(
        claims_run.status.success(),
        "{}\n{}",
        stderr(&claims_run),
        provider.logs()
    );
    let decoded: serde_json::Value = serde_json::from_slice(&claims_run.stdout).unwrap();
    let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &client.der).as_ref());
    assert_eq!(decoded["claims"]["client_id"], CLIENT_ID, "{decoded}");
    assert_eq!(
        decoded["claims"]["cnf"]["x5t#S256"], thumbprint,
        "the token is bound to the certificate of --tls-certificate-file: {decoded}"
    );
    // RFC 8705 §5: both token requests went to the mTLS alias.
    let alias_requests = provider
        .logs()
        .lines()
        .filter(|line| *line == "mtls-alias: POST /token")
        .count();
    assert_eq!(alias_requests, 2, "{}", provider.logs());

    let key_body: String = client
        .key_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    for (what, output) in [
        ("mTLS token stdout", stdout(&summary_run)),
        ("mTLS token stderr (TRACE)", stderr(&summary_run)),
        ("mTLS --format claims stdout", stdout(&claims_run)),
        ("mTLS --format claims stderr (TRACE)", stderr(&claims_run)),
    ] {
        // The private key's PEM, and any JWT: the access token.
        assert_no_secret(what, &output);
        for chunk in key_body.as_bytes().chunks(16) {
            let chunk = std::str::from_utf8(chunk).unwrap();
            assert!(
                !output.contains(chunk),
                "{what} shows key material ({chunk:?}):\n{output}"
            );
        }
    }
    assert!(
        stderr(&summary_run).contains("TRACE") || stderr(&summary_run).contains("DEBUG"),
        "-vv logs: {}",
        stderr(&summary_run)
    );
}

/// The flags of a client of the sandbox's Cognito-style token server,
/// with its secret in `M2M_TEST_SECRET`.
fn cognito_flags(sandbox: &Sandbox) -> Vec<String> {
    [
        "--provider",
        "custom",
        "--token-url",
        &sandbox.cognito_token_url(),
        "--client-id",
        demo::COGNITO_CLIENT_ID,
        "--client-secret-env",
        "M2M_TEST_SECRET",
        "--scope",
        "transactions/mock transactions/post",
        "--auth",
        "post",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// `m2m call ... postValidationMessage` with `flags`, in a blocking task.
async fn call_validation_message(flags: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut args = vec!["call", "-", "postValidationMessage"];
        args.extend(flags.iter().map(String::as_str));
        args.extend([
            "--param",
            "accountNumber=000123456789",
            "--param",
            "routingNumber=021000021",
            "--param",
            "amount=10.5",
            "--param",
            "currency=USD",
            "--param",
            "transactionType=Debit",
            "--param",
            "reference=CLI-1",
        ]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        m2m_with_env(&args, &env)
    })
    .await
    .unwrap()
}

/// RFC 6750 §5.3: a bearer token goes over TLS only. An API base URL with
/// plain http to a host that is not loopback is refused before any token is
/// fetched, with one line naming it (exit 2), even when a proxy would carry
/// the request.
#[tokio::test(flavor = "multi_thread")]
async fn call_refuses_plain_http_to_a_remote_api_and_exits_2_naming_the_url() {
    let sandbox = Sandbox::start().await.unwrap();
    let proxy = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
        .mount(&proxy)
        .await;
    let mut flags = cognito_flags(&sandbox);
    flags.extend([
        "--api-base-url".to_owned(),
        "http://api.example.invalid/nxtsoft".to_owned(),
    ]);

    let output = call_validation_message(
        flags,
        vec![
            ("M2M_TEST_SECRET", demo::COGNITO_CLIENT_SECRET.to_owned()),
            ("HTTP_PROXY", proxy.uri()),
            ("http_proxy", proxy.uri()),
            ("NO_PROXY", "127.0.0.1,localhost".to_owned()),
            ("no_proxy", "127.0.0.1,localhost".to_owned()),
        ],
    )
    .await;

    let seen_by_proxy: Vec<String> = proxy
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| {
            let authorization = request.headers.get("authorization");
            format!("{} {authorization:?}", request.url)
        })
        .collect();
    assert_eq!(
        seen_by_proxy,
        Vec::<String>::new(),
        "nothing reaches the proxy"
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let line = one_line(&stderr(&output)).to_owned();
    assert!(
        line.contains("http://api.example.invalid/nxtsoft"),
        "{line}"
    );
    assert!(line.contains("plain http"), "{line}");
    assert_eq!(sandbox.stats().token_requests(), 0, "no token was fetched");
    assert_no_secret("stderr", &line);
}

/// An API that does not answer: `--api-timeout-secs 1` ends the call after
/// about a second, with an error that says it timed out and names the limit.
#[tokio::test(flavor = "multi_thread")]
async fn call_times_out_after_api_timeout_secs_and_says_so() {
    let sandbox = Sandbox::start().await.unwrap();
    let api = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({}))
                .set_delay(std::time::Duration::from_secs(30)),
        )
        .mount(&api)
        .await;
    let mut flags = cognito_flags(&sandbox);
    flags.extend([
        "--api-base-url".to_owned(),
        api.uri(),
        "--api-timeout-secs".to_owned(),
        "1".to_owned(),
    ]);
    let started = std::time::Instant::now();

    let output = call_validation_message(
        flags,
        vec![("M2M_TEST_SECRET", demo::COGNITO_CLIENT_SECRET.to_owned())],
    )
    .await;

    let elapsed = started.elapsed();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let line = one_line(&err);
    assert!(line.contains("timed out"), "{line}");
    assert!(line.contains("api_timeout_secs"), "{line}");
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
    assert_no_secret("stderr", &err);
    assert_no_secret("stdout", &stdout(&output));
}

#[test]
fn no_snapshot_holds_a_secret_or_a_token() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/snapshots");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_no_secret(&path.display().to_string(), &text);
        for line in text.lines() {
            if let Some(at) = line
                .find("client_secret=")
                .or_else(|| line.find("client_assertion="))
            {
                let value = &line[at..];
                assert!(
                    value.to_lowercase().contains("redacted"),
                    "{}: {line}",
                    path.display()
                );
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 28,
        "expected the API and token request snapshots, found {checked}"
    );
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
