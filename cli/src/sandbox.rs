//! `m2m sandbox`: the embedded sandbox, until Ctrl-C; optionally with an
//! m2m.toml whose clients work against it.

use std::path::{Path, PathBuf};

use clap::Args;
use m2m::config::{AuthMethodName, ClientConfig, Config, EnvironmentName, ProviderKind};
use m2m::sandbox::{Sandbox, demo};
use secrecy::ExposeSecret;
use url::Url;

use crate::failure::Failure;

/// First line of a configuration written by `--write-config`: such a file
/// may be overwritten, any other is kept.
const MARKER: &str = "# Written by `m2m sandbox --write-config`";

/// How long the federated client's workload token (written beside the
/// configuration) is valid.
const WORKLOAD_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Arguments of `m2m sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The loopback port to listen on (default: a free one). Give the same
    /// port again to keep a written configuration's URLs valid.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Write an m2m.toml whose clients work against this sandbox (their
    /// secrets in files beside it, readable by you alone).
    #[arg(long, value_name = "FILE")]
    write_config: Option<PathBuf>,
}

/// Runs the sandbox until Ctrl-C.
pub async fn run(args: SandboxArgs) -> Result<(), Failure> {
    if let Some(file) = &args.write_config {
        refuse_to_overwrite(file)?;
    }
    let sandbox = Sandbox::builder()
        .port(args.port)
        .start()
        .await
        .map_err(|e| Failure::usage(format!("cannot start the sandbox: {e}")))?;
    match &args.write_config {
        None => println!("{sandbox}"),
        Some(file) => {
            let names = write_config(&sandbox, file)?;
            print_usage(&sandbox, file, &names, args.port);
        }
    }
    println!("Sandbox running; press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Failure::remote(format!("cannot wait for Ctrl-C: {e}")))?;
    sandbox
        .shutdown()
        .await
        .map_err(|e| Failure::remote(format!("the sandbox did not stop cleanly: {e}")))
}

fn refuse_to_overwrite(file: &Path) -> Result<(), Failure> {
    match std::fs::read_to_string(file) {
        Ok(text) if !text.starts_with(MARKER) => Err(Failure::usage(format!(
            "{} exists and was not written by m2m sandbox: remove it or name another file",
            file.display()
        ))),
        _ => Ok(()),
    }
}

/// The secrets directory beside `file`: `m2m.toml` → `m2m.secrets/`.
fn secrets_dir(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "m2m".into(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}.secrets"))
}

/// Writes the configuration and its secret files; returns the client names.
fn write_config(sandbox: &Sandbox, file: &Path) -> Result<Vec<String>, Failure> {
    let dir = secrets_dir(file);
    let failed = |what: &str, path: &Path, e: std::io::Error| {
        Failure::usage(format!("cannot write {what} {}: {e}", path.display()))
    };
    create_private_dir(&dir).map_err(|e| failed("the secrets directory", &dir, e))?;
    let write_secret = |name: &str, secret: &str| -> Result<PathBuf, String> {
        let path = dir.join(name);
        write_private(&path, secret.as_bytes())
            .map_err(|e| format!("cannot write the secret file {}: {e}", path.display()))?;
        Ok(std::path::absolute(&path).unwrap_or(path))
    };
    let secret_file = |name: &str, secret: &str| write_secret(name, secret).map_err(Failure::usage);
    let entra_secret = secret_file("entra", demo::ENTRA_CLIENT_SECRET)?;
    let cognito_secret = secret_file("cognito", demo::COGNITO_CLIENT_SECRET)?;
    let identityserver_secret = secret_file("identityserver", demo::IDENTITYSERVER_CLIENT_SECRET)?;
    let oidc_secret = secret_file("oidc", demo::OIDC_CLIENT_SECRET)?;
    let dpop_secret = secret_file("dpop", demo::DPOP_CLIENT_SECRET)?;
    let workload_token = sandbox
        .federated_token(WORKLOAD_TOKEN_LIFETIME)
        .map_err(|e| Failure::usage(format!("cannot make the workload token: {e}")))?;
    let workload_token = secret_file("workload-token", &workload_token)?;

    let url = |text: String| {
        Url::parse(&text).map_err(|e| Failure::usage(format!("sandbox URL {text}: {e}")))
    };
    let scopes = |list: &[&str]| Some(list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    let entra = ClientConfig {
        tenant_id: Some(demo::ENTRA_TENANT_ID.to_owned()),
        authority_host: Some(url(sandbox.base_url().to_owned())?),
        client_id: Some(demo::ENTRA_CLIENT_ID.to_owned()),
        client_secret_file: Some(entra_secret),
        ..ClientConfig::default()
    };
    let mut config = Config::default();
    let mut add = |name: &str, client: ClientConfig| {
        config.clients.insert(name.to_owned(), client);
    };
    add(
        "cenda",
        ClientConfig {
            provider: Some(ProviderKind::Cenda),
            gateway_client_id: Some(demo::CENDA_GATEWAY_CLIENT_ID.to_owned()),
            api_base_url: Some(url(sandbox.cenda_api_url())?),
            ..entra.clone()
        },
    );
    add(
        "federated",
        ClientConfig {
            provider: Some(ProviderKind::Cenda),
            gateway_client_id: Some(demo::CENDA_GATEWAY_CLIENT_ID.to_owned()),
            api_base_url: Some(url(sandbox.cenda_api_url())?),
            client_id: Some(demo::FEDERATED_CLIENT_ID.to_owned()),
            client_secret_file: None,
            auth: Some(AuthMethodName::ClientAssertion),
            client_assertion_file: Some(workload_token),
            ..entra.clone()
        },
    );
    add(
        "nxtport",
        ClientConfig {
            provider: Some(ProviderKind::Nxtport),
            environment: Some(EnvironmentName::Staging),
            ..entra
        },
    );
    add(
        "nxtsoft",
        ClientConfig {
            provider: Some(ProviderKind::Nxtsoft),
            token_url: Some(url(sandbox.cognito_token_url())?),
            api_base_url: Some(url(sandbox.nxtsoft_api_url())?),
            client_id: Some(demo::COGNITO_CLIENT_ID.to_owned()),
            client_secret_file: Some(cognito_secret),
            scopes: scopes(&[demo::SCOPE_TRANSACTIONS_MOCK, demo::SCOPE_TRANSACTIONS_POST]),
            ..ClientConfig::default()
        },
    );
    let identity_server = sandbox.demo_client(demo::ProviderStyle::IdentityServer);
    add(
        "sequel",
        ClientConfig {
            provider: Some(ProviderKind::Sequel),
            authentication_server_url: Some(url(sandbox.sequel_authentication_server_url())?),
            client_id: Some(identity_server.client_id.to_owned()),
            client_secret_file: Some(identityserver_secret),
            scopes: scopes(identity_server.scopes),
            ..ClientConfig::default()
        },
    );
    let oidc = sandbox.demo_client(demo::ProviderStyle::Oidc);
    add(
        "apiture",
        ClientConfig {
            provider: Some(ProviderKind::Apiture),
            discovery_url: Some(url(sandbox.oidc_discovery_url())?),
            client_id: Some(oidc.client_id.to_owned()),
            client_secret_file: Some(oidc_secret),
            scopes: scopes(oidc.scopes),
            ..ClientConfig::default()
        },
    );
    add(
        "dpop",
        ClientConfig {
            provider: Some(ProviderKind::Sequel),
            authentication_server_url: Some(url(sandbox.sequel_authentication_server_url())?),
            api_base_url: Some(url(sandbox.nxtsoft_api_url())?),
            client_id: Some(demo::DPOP_CLIENT_ID.to_owned()),
            client_secret_file: Some(dpop_secret),
            scopes: scopes(&[demo::SCOPE_TRANSACTIONS_MOCK]),
            dpop: Some(true),
            ..ClientConfig::default()
        },
    );
    add(
        "mtls",
        mtls_client(sandbox, false, write_secret).map_err(Failure::usage)?,
    );
    add(
        "mtls-self-signed",
        mtls_client(sandbox, true, write_secret).map_err(Failure::usage)?,
    );
    let toml = toml::to_string_pretty(&config)
        .map_err(|e| Failure::usage(format!("cannot write the configuration: {e}")))?;
    let text = format!(
        "{MARKER} for the sandbox at {}.\n# Secrets are in {}/ (sandbox-only values).\n\n{toml}",
        sandbox.base_url(),
        dir.display()
    );
    std::fs::write(file, text).map_err(|e| failed("the configuration", file, e))?;
    Ok(config.clients.keys().cloned().collect())
}

fn print_usage(sandbox: &Sandbox, file: &Path, names: &[String], port: u16) {
    let config = file.display();
    println!("m2m sandbox on {}", sandbox.base_url());
    println!(
        "Wrote {config} with the clients {} (their secrets in {}/).",
        names.join(", "),
        secrets_dir(file).display()
    );
    println!("\nTry, while the sandbox runs:");
    println!("  m2m --config {config} config check");
    println!("  m2m --config {config} token nxtsoft --decode");
    println!("  m2m --config {config} call cenda listOrganisations");
    println!("  m2m --config {config} call nxtsoft postValidationMessage --help");
    if port == 0 {
        println!(
            "\nThe URLs hold for this run only: start it again with --port {} to keep them.",
            sandbox.address().port()
        );
    }
    println!();
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// One of the sandbox's mutual-TLS clients (RFC 8705): `tls_client_auth`
/// with the certificate its CA issued, or with `self_signed` the
/// `self_signed_tls_client_auth` client and its registered self-signed
/// certificate. The certificate, its key and the sandbox's CA (trusted
/// through `tls_ca_file`) are written by `file` (a name and its contents to
/// a private file, its path back); they are made at the sandbox's start:
/// valid while it runs. The token goes to the discovery document's mTLS
/// alias and is bound to the certificate, which the API calls present too.
pub(crate) fn mtls_client(
    sandbox: &Sandbox,
    self_signed: bool,
    mut file: impl FnMut(&str, &str) -> Result<PathBuf, String>,
) -> Result<ClientConfig, String> {
    let url = |text: String| Url::parse(&text).map_err(|e| format!("sandbox URL {text}: {e}"));
    let (client_id, auth, identity, prefix) = if self_signed {
        (
            demo::MTLS_SELF_SIGNED_CLIENT_ID,
            AuthMethodName::SelfSignedTlsClientAuth,
            sandbox.mtls_self_signed_client_identity(),
            "mtls-self-signed",
        )
    } else {
        (
            demo::MTLS_CLIENT_ID,
            AuthMethodName::TlsClientAuth,
            sandbox.mtls_client_identity(),
            "mtls",
        )
    };
    Ok(ClientConfig {
        provider: Some(ProviderKind::Custom),
        discovery_url: Some(url(sandbox.oidc_discovery_url())?),
        api_base_url: Some(url(sandbox.mtls_nxtsoft_api_url())?),
        client_id: Some(client_id.to_owned()),
        auth: Some(auth),
        scopes: Some(vec![demo::SCOPE_TRANSACTIONS_MOCK.to_owned()]),
        tls_certificate_file: Some(file(
            &format!("{prefix}-client-cert.pem"),
            &identity.certificate_pem,
        )?),
        tls_key_file: Some(file(
            &format!("{prefix}-client-key.pem"),
            identity.key_pem.expose_secret(),
        )?),
        tls_ca_file: Some(file("sandbox-ca.pem", sandbox.tls_root_certificate_pem())?),
        ..ClientConfig::default()
    })
}

/// Writes `contents` to `path`, readable and writable by this user only.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}
