//! `m2m demo`: the whole flow against the embedded sandbox, no credentials.
//!
//! It starts the sandbox on a free loopback port, generates a configuration
//! with one client per provider variant (secrets in environment variables,
//! as a real deployment would have them), fetches a token in every
//! provider's style, onboards an organisation on the Cenda Configuration
//! API in the vendor's order (create it, validate it, an issuance template
//! with the `SerialNumber` attribute, a verification template, list them,
//! revoke a credential), and posts an NXTsoft validation message. Each step
//! prints one line; a summary table closes.

use std::future::Future;
use std::time::{Duration, Instant};

use clap::Args;
use m2m::apis::{cenda_configuration as cenda, nxtsoft_transactions as nxtsoft};
use m2m::auth::{Auth, ClientAuthMethod, TokenCache};
use m2m::config::{AuthMethodName, ClientConfig, Config, EnvironmentName, ProviderKind};
use m2m::sandbox::{Sandbox, demo};
use serde::Serialize;
use serde_json::json;
use url::Url;

use crate::failure::Failure;

/// Arguments of `m2m demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Also print the generated m2m.toml.
    #[arg(long)]
    show_config: bool,
}

/// The environment variables the generated configuration reads secrets
/// from, and their sandbox values. `main` sets them before any thread
/// starts.
pub const SECRET_VARIABLES: [(&str, &str); 5] = [
    ("M2M_DEMO_ENTRA_SECRET", demo::ENTRA_CLIENT_SECRET),
    ("M2M_DEMO_COGNITO_SECRET", demo::COGNITO_CLIENT_SECRET),
    (
        "M2M_DEMO_IDENTITYSERVER_SECRET",
        demo::IDENTITYSERVER_CLIENT_SECRET,
    ),
    ("M2M_DEMO_OIDC_SECRET", demo::OIDC_CLIENT_SECRET),
    ("M2M_DEMO_DPOP_SECRET", demo::DPOP_CLIENT_SECRET),
];

/// One line of the report.
struct Step {
    name: String,
    client: String,
    elapsed: Duration,
    ok: bool,
}

/// Collects steps and prints each as it ends.
#[derive(Default)]
struct Report {
    steps: Vec<Step>,
}

impl Report {
    async fn run<T, F>(&mut self, name: &str, client: &str, shape: &str, step: F) -> Option<T>
    where
        F: Future<Output = Result<(T, String), String>>,
    {
        let number = self.steps.len() + 1;
        let started = Instant::now();
        let result = step.await;
        let elapsed = started.elapsed();
        let (ok, outcome, value) = match result {
            Ok((value, outcome)) => (true, outcome, Some(value)),
            Err(error) => (false, error, None),
        };
        println!(
            "[{number:>2}] {mark} {name:<40} {client:<9} {outcome}  ({ms:.1} ms)",
            mark = if ok { "ok  " } else { "FAIL" },
            ms = elapsed.as_secs_f64() * 1000.0,
        );
        for line in shape.lines() {
            println!("          {line}");
        }
        self.steps.push(Step {
            name: name.to_owned(),
            client: client.to_owned(),
            elapsed,
            ok,
        });
        value
    }

    fn print_summary(&self, sandbox: &Sandbox) {
        println!("\nSummary");
        println!("  {:<40} {:<9} {:>9}  result", "step", "client", "ms");
        for step in &self.steps {
            println!(
                "  {:<40} {:<9} {:>9.1}  {}",
                step.name,
                step.client,
                step.elapsed.as_secs_f64() * 1000.0,
                if step.ok { "ok" } else { "FAILED" }
            );
        }
        let stats = sandbox.stats();
        let passed = self.steps.iter().filter(|s| s.ok).count();
        println!(
            "\n  {passed}/{} steps passed; the sandbox saw {} token requests and {} API requests \
             (API calls reuse the cached token).",
            self.steps.len(),
            stats.token_requests(),
            stats.api_requests()
        );
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    // The workload token and the mTLS key go with the run, however it ends.
    let _files = RunFiles;
    let sandbox = Sandbox::start()
        .await
        .map_err(|e| Failure::remote(format!("cannot start the sandbox: {e}")))?;
    println!(
        "m2m demo: the embedded sandbox is at {}",
        sandbox.base_url()
    );
    let config = generated_config(&sandbox).map_err(Failure::usage)?;
    let toml = toml::to_string_pretty(&config).expect("the configuration serialises");
    if args.show_config {
        println!("\nGenerated m2m.toml (secrets are read from environment variables):\n");
        println!("{toml}");
    } else {
        println!(
            "A configuration with {} clients was generated (--show-config prints it); \
             their secrets come from M2M_DEMO_* environment variables.\n",
            config.clients.len()
        );
    }

    let cache = config.new_token_cache().await?;
    let mut report = Report::default();
    let mut auths = Vec::new();
    for name in [
        "nxtport",
        "cenda",
        "nxtsoft",
        "sequel",
        "apiture",
        "custom",
        "federated",
        "dpop",
        "mtls",
    ] {
        let client = &config.clients[name];
        let shape = token_request_shape(&config, name, client);
        let federated = if client.auth == Some(AuthMethodName::ClientAssertion) {
            ", federated (a workload token, no secret)"
        } else {
            ""
        };
        let dpop = if client.dpop == Some(true) {
            " (DPoP)"
        } else if client.auth == Some(AuthMethodName::TlsClientAuth) {
            " (mutual TLS)"
        } else {
            ""
        };
        let auth = report
            .run(
                &format!(
                    "token, {} style{federated}{dpop}",
                    client.provider.map_or("?", ProviderKind::name)
                ),
                name,
                &shape,
                fetch_token(&config, name, &cache),
            )
            .await;
        if let Some(auth) = auth {
            auths.push((name.to_owned(), auth));
        }
    }
    let auth_of = |wanted: &str| {
        auths
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, auth)| auth.clone())
    };

    if let Some(auth) = auth_of("cenda") {
        let api = cenda::Client::new(&sandbox.cenda_api_url(), auth);
        cenda_steps(&mut report, &api, &sandbox).await;
    }
    if let Some(auth) = auth_of("nxtsoft") {
        let api = nxtsoft::Client::new(&sandbox.nxtsoft_api_url(), auth);
        nxtsoft_steps(&mut report, &api, "nxtsoft", "Bearer", false).await;
    }
    if let Some(auth) = auth_of("dpop") {
        // Every call: `Authorization: DPoP <token>` and a fresh proof.
        let api = nxtsoft::Client::new(&sandbox.nxtsoft_api_url(), auth);
        nxtsoft_steps(&mut report, &api, "dpop", "DPoP", false).await;
    }
    if let Some(auth) = auth_of("mtls") {
        // Over the sandbox's HTTPS listener, presenting the certificate the
        // token is bound to.
        match nxtsoft::Client::from_auth(&sandbox.mtls_nxtsoft_api_url(), auth) {
            Ok(api) => nxtsoft_steps(&mut report, &api, "mtls", "Bearer", true).await,
            Err(error) => println!("cannot build the mutual-TLS client: {error}"),
        }
    }

    report.print_summary(&sandbox);
    let failed = report.steps.iter().filter(|s| !s.ok).count();
    let _ = sandbox.shutdown().await;
    if failed == 0 {
        Ok(())
    } else {
        Err(Failure::remote(format!("{failed} demo steps failed")))
    }
}

/// One client per provider variant, all pointing at the sandbox.
fn generated_config(sandbox: &Sandbox) -> Result<Config, String> {
    let url = |text: String| Url::parse(&text).map_err(|e| format!("{text}: {e}"));
    let base = url(sandbox.base_url().to_owned())?;
    let entra = |secret_env: &str| ClientConfig {
        tenant_id: Some(demo::ENTRA_TENANT_ID.to_owned()),
        authority_host: Some(base.clone()),
        client_id: Some(demo::ENTRA_CLIENT_ID.to_owned()),
        client_secret_env: Some(secret_env.to_owned()),
        ..ClientConfig::default()
    };
    let mut config = Config::default();
    config.clients.insert(
        "nxtport".to_owned(),
        ClientConfig {
            provider: Some(ProviderKind::Nxtport),
            environment: Some(EnvironmentName::Staging),
            ..entra(SECRET_VARIABLES[0].0)
        },
    );
    config.clients.insert(
        "cenda".to_owned(),
        ClientConfig {
            provider: Some(ProviderKind::Cenda),
            gateway_client_id: Some(demo::CENDA_GATEWAY_CLIENT_ID.to_owned()),
            api_base_url: Some(url(sandbox.cenda_api_url())?),
            ..entra(SECRET_VARIABLES[0].0)
        },
    );
    config.clients.insert(
        "nxtsoft".to_owned(),
        ClientConfig {
            provider: Some(ProviderKind::Nxtsoft),
            token_url: Some(url(sandbox.cognito_token_url())?),
            api_base_url: Some(url(sandbox.nxtsoft_api_url())?),
            client_id: Some(demo::COGNITO_CLIENT_ID.to_owned()),
            client_secret_env: Some(SECRET_VARIABLES[1].0.to_owned()),
            // The preset asks for no scope: Cognito then grants every scope
            // of the client (`transactions/mock` and `transactions/post`).
            ..ClientConfig::default()
        },
    );
    let identity_server = sandbox.demo_client(demo::ProviderStyle::IdentityServer);
    config.clients.insert(
        "sequel".to_owned(),
        ClientConfig {
            provider: Some(ProviderKind::Sequel),
            authentication_server_url: Some(url(sandbox.sequel_authentication_server_url())?),
            client_id: Some(identity_server.client_id.to_owned()),
            client_secret_env: Some(SECRET_VARIABLES[2].0.to_owned()),
            scopes: Some(
                identity_server
                    .scopes
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            ),
            ..ClientConfig::default()
        },
    );
    let oidc = sandbox.demo_client(demo::ProviderStyle::Oidc);
    let oidc_scopes: Vec<String> = oidc.scopes.iter().map(|s| (*s).to_owned()).collect();
    config.clients.insert(
        "apiture".to_owned(),
        ClientConfig {
            provider: Some(ProviderKind::Apiture),
            discovery_url: Some(url(sandbox.oidc_discovery_url())?),
            client_id: Some(oidc.client_id.to_owned()),
            client_secret_env: Some(SECRET_VARIABLES[3].0.to_owned()),
            scopes: Some(oidc_scopes.clone()),
            ..ClientConfig::default()
        },
    );
    config.clients.insert(
        "custom".to_owned(),
        ClientConfig {
            provider: Some(ProviderKind::Custom),
            discovery_url: Some(url(sandbox.oidc_discovery_url())?),
            client_id: Some(oidc.client_id.to_owned()),
            client_secret_env: Some(SECRET_VARIABLES[3].0.to_owned()),
            scopes: Some(oidc_scopes),
            auth: Some(AuthMethodName::Basic),
            ..ClientConfig::default()
        },
    );
    // Workload identity federation: the sandbox signs the workload's token
    // as the Kubernetes API server would, and m2m reads it from the file at
    // every token request, as from AZURE_FEDERATED_TOKEN_FILE.
    config.clients.insert(
        "federated".to_owned(),
        ClientConfig {
            provider: Some(ProviderKind::Cenda),
            gateway_client_id: Some(demo::CENDA_GATEWAY_CLIENT_ID.to_owned()),
            api_base_url: Some(url(sandbox.cenda_api_url())?),
            client_id: Some(demo::FEDERATED_CLIENT_ID.to_owned()),
            client_secret_env: None,
            auth: Some(AuthMethodName::ClientAssertion),
            client_assertion_file: Some(federated_token_file(sandbox)?),
            ..entra(SECRET_VARIABLES[0].0)
        },
    );
    // The sandbox's DPoP client: Sequel style, tokens bound to a key made
    // for the process; the token request and every API call carry a proof.
    config.clients.insert(
        "dpop".to_owned(),
        ClientConfig {
            provider: Some(ProviderKind::Sequel),
            authentication_server_url: Some(url(sandbox.sequel_authentication_server_url())?),
            client_id: Some(demo::DPOP_CLIENT_ID.to_owned()),
            client_secret_env: Some(SECRET_VARIABLES[4].0.to_owned()),
            scopes: Some(vec![demo::SCOPE_TRANSACTIONS_MOCK.to_owned()]),
            dpop: Some(true),
            ..ClientConfig::default()
        },
    );
    // Mutual TLS (RFC 8705): the sandbox's client certificate, at the mTLS
    // alias over HTTPS (the sandbox's own CA, trusted through tls_ca_file).
    config.clients.insert(
        "mtls".to_owned(),
        crate::sandbox::mtls_client(sandbox, false, private_file)?,
    );
    Ok(config)
}

/// The directory of this run's files (workload token, mTLS certificate and
/// key).
fn run_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("m2m-demo-{}", std::process::id()))
}

/// Removes [`run_dir`] when dropped.
struct RunFiles;

impl Drop for RunFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(run_dir());
    }
}

/// Writes a workload token of the sandbox's federated client to a private
/// file of this run, and returns its path.
fn federated_token_file(sandbox: &Sandbox) -> Result<std::path::PathBuf, String> {
    let token = sandbox
        .federated_token(std::time::Duration::from_secs(3600))
        .map_err(|e| e.to_string())?;
    private_file("azure-identity-token", &token)
}

/// Writes `contents` to the file `name` of this run's directory, readable
/// by this user only, and returns its path.
fn private_file(name: &str, contents: &str) -> Result<std::path::PathBuf, String> {
    let dir = run_dir();
    let file = dir.join(name);
    std::fs::create_dir_all(&dir)
        .and_then(|()| crate::sandbox::write_private(&file, contents.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(file)
}

/// Fetches a token for `name`, returning its auth handle.
async fn fetch_token(
    config: &Config,
    name: &str,
    cache: &TokenCache,
) -> Result<(Auth, String), String> {
    let auth = config
        .auth_with_cache(name, cache)
        .map_err(|e| e.to_string())?;
    let token = auth.token().await.map_err(|e| e.to_string())?;
    let expires_in = token
        .expires_at()
        .duration_since(std::time::SystemTime::now())
        .map_or(0, |d| d.as_secs());
    Ok((
        auth,
        format!("{} token, expires in {expires_in} s", token.token_type()),
    ))
}

/// What the token request of `name` looks like, secrets redacted.
fn token_request_shape(config: &Config, name: &str, client: &ClientConfig) -> String {
    let Ok(builder) = config.token_endpoint(name) else {
        return String::new();
    };
    let Ok(endpoint) = builder.build() else {
        return String::new();
    };
    let identity = endpoint.identity();

    // No `scope` parameter at all when there are no scopes (Cognito then
    // grants all of the client's).
    let scope = match identity.scopes.join(" ") {
        scopes if scopes.is_empty() => String::new(),
        scopes => format!("&scope={scopes}"),
    };
    let method = endpoint.client_auth();
    let (header, body) = match method {
        ClientAuthMethod::ClientSecretPost => (
            None,
            format!(
                "grant_type=client_credentials&client_id={}&client_secret=[redacted]{scope}",
                identity.client_id
            ),
        ),
        ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretBasicUnencoded => (
            Some("Authorization: Basic [redacted]"),
            format!("grant_type=client_credentials{scope}"),
        ),
        ClientAuthMethod::ClientSecretBasicAndPost => (
            Some("Authorization: Basic [redacted]"),
            format!(
                "grant_type=client_credentials&client_id={}&client_secret=[redacted]{scope}",
                identity.client_id
            ),
        ),
        ClientAuthMethod::PrivateKeyJwt | ClientAuthMethod::ClientAssertion => (
            None,
            format!(
                "grant_type=client_credentials&client_id={}&client_assertion_type=…jwt-bearer&client_assertion=[redacted]{scope}",
                identity.client_id
            ),
        ),
        ClientAuthMethod::TlsClientAuth | ClientAuthMethod::SelfSignedTlsClientAuth => (
            None,
            format!(
                "grant_type=client_credentials&client_id={}{scope} (client certificate on the TLS connection)",
                identity.client_id
            ),
        ),
    };
    let mut shape = if client.discovery_url.is_some() {
        // RFC 8705 §5: a client with a certificate takes the mTLS alias.
        let endpoint_name = if method.is_mutual_tls() {
            "mtls_endpoint_aliases.token_endpoint"
        } else {
            "token_endpoint"
        };
        format!(
            "POST <{endpoint_name} of {}>  [{method}]",
            identity.authority
        )
    } else {
        format!("POST {}  [{method}]", identity.authority)
    };
    if let Some(header) = header {
        shape.push_str(&format!("\n{header}"));
    }
    if endpoint.dpop().is_some() {
        shape.push_str("\nDPoP: [proof redacted]");
    }
    shape.push_str(&format!("\n{body}"));
    shape
}

/// The request shape of an API call: method, path and JSON body.
fn api_shape(method: &str, path: &str, body: Option<&impl Serialize>) -> String {
    api_shape_with(method, path, "Bearer", body)
}

/// [`api_shape`] with the authorization scheme `scheme`; a DPoP call shows
/// that a proof goes along, never the proof.
fn api_shape_with(method: &str, path: &str, scheme: &str, body: Option<&impl Serialize>) -> String {
    let mut shape = format!("{method} {path}\nAuthorization: {scheme} [redacted]");
    if scheme == "DPoP" {
        shape.push_str("\nDPoP: [proof redacted]");
    }
    if let Some(body) = body {
        shape.push('\n');
        shape.push_str(&serde_json::to_string(body).unwrap_or_default());
    }
    shape
}

fn describe<E: std::fmt::Debug>(error: progenitor_client::Error<E>) -> String {
    match error.status() {
        Some(status) => format!("HTTP {status}: {error}"),
        None => error.to_string(),
    }
}

/// The Cenda onboarding in the vendor's order: create the organisation,
/// validate it, create an issuance template (with the `SerialNumber`
/// attribute) and a verification template, list them, then revoke a
/// credential issued from the issuance template.
async fn cenda_steps(report: &mut Report, api: &cenda::Client, sandbox: &Sandbox) {
    let organisation_request: cenda::types::CreateOrganisationRequest =
        serde_json::from_value(json!({
            "name": "Acme Demo Ltd",
            "cssUrl": "https://www.acme.example/cenda/qr-page.css",
            "roundLogo": "https://www.acme.example/assets/round-logo.png"
        }))
        .expect("a valid CreateOrganisationRequest");
    let Some(organisation) = report
        .run(
            "createOrganisation",
            "cenda",
            &api_shape("POST", "/api/Organisation", Some(&organisation_request)),
            async {
                let created = api
                    .create_organisation()
                    .body(organisation_request.clone())
                    .send()
                    .await
                    .map_err(describe)?;
                let outcome = format!(
                    "{} → organisation {} (validated: {})",
                    created.status(),
                    created.organisation_id,
                    created.validated
                );
                Ok((created.into_inner(), outcome))
            },
        )
        .await
    else {
        return;
    };
    let id = organisation.organisation_id;

    let validated = report
        .run(
            "validateOrganisation",
            "cenda",
            &api_shape(
                "POST",
                &format!("/api/Organisation/{id}/validate"),
                None::<&()>,
            ),
            async {
                let validation = api
                    .validate_organisation()
                    .organisation_id(&id)
                    .send()
                    .await
                    .map_err(describe)?;
                let outcome = format!(
                    "{} → validated: {} ({})",
                    validation.status(),
                    validation.validated,
                    validation.detail.as_deref().unwrap_or_default()
                );
                Ok(((), outcome))
            },
        )
        .await;
    if validated.is_none() {
        return;
    }

    let issuance: cenda::types::CreateCredentialTemplateRequest = serde_json::from_value(json!({
        "name": "Employee Badge",
        "templateType": "Issuance",
        "attributes": [
            {"name": "SerialNumber", "dataType": "String", "authenticatorLabel": "Serial number"},
            {"name": "FullName", "dataType": "String", "authenticatorLabel": "Name"},
            {"name": "Photo", "dataType": "JpegImageType", "authenticatorLabel": "Photo"}
        ]
    }))
    .expect("a valid CreateCredentialTemplateRequest");
    let verification: cenda::types::CreateCredentialTemplateRequest =
        serde_json::from_value(json!({
            "name": "Employee Badge Check",
            "templateType": "Verification",
            "attributes": [
                {"name": "FullName", "dataType": "String"},
                {"name": "Photo", "dataType": "JpegImageType"}
            ]
        }))
        .expect("a valid CreateCredentialTemplateRequest");
    let mut issuance_template = None;
    for (step, request) in [
        ("createCredentialTemplate (Issuance)", &issuance),
        ("createCredentialTemplate (Verification)", &verification),
    ] {
        let created = report
            .run(
                step,
                "cenda",
                &api_shape(
                    "POST",
                    &format!("/api/Organisation/{id}/credentialtemplate"),
                    Some(request),
                ),
                async {
                    let created = api
                        .create_credential_template()
                        .organisation_id(&id)
                        .body(request.clone())
                        .send()
                        .await
                        .map_err(describe)?;
                    let outcome = format!(
                        "{} → template {} with {} attribute(s)",
                        created.status(),
                        created.credential_template_id,
                        created.attributes.len()
                    );
                    Ok((created.into_inner(), outcome))
                },
            )
            .await;
        if issuance_template.is_none() {
            issuance_template = created;
        }
    }

    report
        .run(
            "listCredentialTemplates",
            "cenda",
            &api_shape(
                "GET",
                &format!("/api/Organisation/{id}/credentialtemplate"),
                None::<&()>,
            ),
            async {
                let templates = api
                    .list_credential_templates()
                    .organisation_id(&id)
                    .send()
                    .await
                    .map_err(describe)?;
                if templates.len() != 2 {
                    return Err(format!("listed {} templates, created 2", templates.len()));
                }
                let kinds: Vec<String> = templates
                    .iter()
                    .map(|t| format!("{} ({:?})", t.name, t.template_type))
                    .collect();
                let outcome = format!("{} → {}", templates.status(), kinds.join(", "));
                Ok(((), outcome))
            },
        )
        .await;

    let Some(template) = issuance_template else {
        return;
    };
    // Issuance goes through Cenda's OIDC interface, not the Configuration
    // API; the sandbox stands in for it so that there is something to revoke.
    let Some(serial_number) = report
        .run(
            "issue a credential (sandbox)",
            "sandbox",
            "stands in for Cenda's OIDC issuance: the issuer gives the SerialNumber in the idTokenHint",
            async {
                let serial = sandbox
                    .issue_credential(&id, &template.name, None)
                    .map_err(|e| e.to_string())?;
                let outcome = format!("SerialNumber {serial} from {:?}", template.name);
                Ok((serial, outcome))
            },
        )
        .await
    else {
        return;
    };

    let revoke: cenda::types::RevokeCredentialRequest = serde_json::from_value(json!({
        "organisationId": id,
        "credentialTemplateName": template.name,
        "serialNumber": serial_number
    }))
    .expect("a valid RevokeCredentialRequest");
    report
        .run(
            "revokeCredential",
            "cenda",
            &api_shape("POST", "/api/Revocation/revoke", Some(&revoke)),
            async {
                let revoked = api
                    .revoke_credential()
                    .body(revoke.clone())
                    .send()
                    .await
                    .map_err(describe)?;
                let outcome = format!("{} → credential {serial_number} revoked", revoked.status());
                Ok(((), outcome))
            },
        )
        .await;
}

/// A validation message posted by `client`, whose token goes out as
/// `scheme`, with its client certificate on the connection when `over_mtls`.
async fn nxtsoft_steps(
    report: &mut Report,
    api: &nxtsoft::Client,
    client: &str,
    scheme: &str,
    over_mtls: bool,
) {
    let mut shape = api_shape_with("POST", "/transactions/mock", scheme, None::<&()>);
    let message: nxtsoft::types::TransactionRequest = serde_json::from_value(json!({
        "accountNumber": "000123456789",
        "routingNumber": "021000021",
        "amount": 125.5,
        "currency": "USD",
        "transactionType": "Credit",
        "reference": "INV-2024-0042",
        "memo": "Invoice 42 settlement",
        "counterpartyName": "Jane Doe"
    }))
    .expect("a valid TransactionRequest");
    if over_mtls {
        shape.push_str("\n(client certificate on the TLS connection)");
    }
    shape.push('\n');
    shape.push_str(&serde_json::to_string(&message).unwrap_or_default());
    report
        .run(
            &if over_mtls {
                format!("postValidationMessage ({scheme}, mutual TLS)")
            } else {
                format!("postValidationMessage ({scheme})")
            },
            client,
            &shape,
            async {
                let result = api
                    .post_validation_message()
                    .body(message.clone())
                    .send()
                    .await
                    .map_err(describe)?;
                let passed = result.checks.iter().filter(|c| c.passed).count();
                let outcome = format!(
                    "{} → {:?}, {passed}/{} checks passed",
                    result.status(),
                    result.status,
                    result.checks.len()
                );
                Ok(((), outcome))
            },
        )
        .await;
}
