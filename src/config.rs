//! The declarative configuration: `m2m.toml`.
//!
//! ```toml
//! [clients.cenda]
//! provider = "cenda"
//! tenant_id = "00000000-0000-0000-0000-000000000001"      # PermissionsTenantId
//! gateway_client_id = "00000000-0000-0000-0000-000000000002"
//! client_id = "00000000-0000-0000-0000-000000000003"
//! client_secret_env = "CENDA_CLIENT_SECRET"                # never the secret itself
//! ```
//!
//! Every field of a client is also a command-line flag of `m2m token` and
//! `m2m call` (the same struct derives both), so a client can be described
//! on the command line alone. Secrets never have to be in the file:
//! `client_secret_env` names an environment variable, `client_secret_file`
//! a file holding the secret (read again when it changes),
//! `secondary_client_secret_env` the next secret of a rotation,
//! `private_key_file` a PEM file, `client_assertion_file` a federated token
//! read at every request (`auth = "client-assertion"`), and
//! `M2M_<CLIENT>_CLIENT_SECRET` overrides the secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use secrecy::ExposeSecret;

use crate::auth::{
    AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, ApiSettings, Auth, CacheEncryptionKey,
    CacheSettings, ClientAuthMethod, ClientCredential, ClientSecrets, CredentialKind, Dpop,
    DpopKey, FileStore, KeyName, MemoryStore, PrivateKeyFiles, SigningAlgorithm, TlsIdentity,
    TlsIdentityFiles, TlsRoots, TokenCache, TokenEndpoint, TokenEndpointBuilder,
    clock::{RandomJitter, SystemClock},
};
use crate::oauth::credential_file::{CredentialFile, read_text};
use crate::provider::{ApitureEnvironment, NxtPortEnvironment, Provider};

/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "M2M_CONFIG";
/// Environment variable the `m2m` command reads the token cache directory
/// from (`[cache] dir`; `--cache-dir` wins over it, it wins over the file).
pub const CACHE_DIR_ENV: &str = "M2M_CACHE_DIR";
/// The configuration file used when neither `--config` nor `M2M_CONFIG` is set.
pub const DEFAULT_CONFIG_FILE: &str = "m2m.toml";

/// The whole `m2m.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Token cache settings shared by every client.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Named clients: `[clients.<name>]`.
    #[serde(default)]
    pub clients: BTreeMap<String, ClientConfig>,
    /// The token cache this configuration owns (made on first use): every
    /// client made from it shares tokens. Not part of the file.
    #[serde(skip)]
    #[schemars(skip)]
    owned_cache: OwnedTokenCache,
}

/// The token cache a [`Config`] owns: made on first use, shared by the
/// configuration's clones, and never part of its comparison.
#[derive(Clone, Default)]
struct OwnedTokenCache(Arc<std::sync::OnceLock<TokenCache>>);

impl PartialEq for OwnedTokenCache {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for OwnedTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "OwnedTokenCache(made)"
        } else {
            "OwnedTokenCache(not yet made)"
        })
    }
}

/// `[cache]`: how tokens are kept and renewed.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct CacheConfig {
    /// Renew a token this many seconds before it expires (at most half of
    /// its lifetime). Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECONDS"))]
    pub refresh_buffer_secs: Option<u64>,
    /// Lifetime assumed for a token whose response has no `expires_in`.
    /// Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECONDS"))]
    pub default_lifetime_secs: Option<u64>,
    /// The most tokens kept in memory. Default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub max_entries: Option<usize>,
    /// A Redis server shared by every replica (`redis://…` or `rediss://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long = "cache-url", value_name = "URL"))]
    pub redis_url: Option<Url>,
    /// `redis_url` is a node of a Redis Cluster (or a managed cluster's
    /// configuration endpoint): the other nodes are discovered, and each
    /// key goes to the node of its slot. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long = "cache-cluster", num_args = 0, default_missing_value = "true")
    )]
    pub redis_cluster: Option<bool>,
    /// The most seconds one token fetch may take, its retries and their
    /// waits included; every caller waiting for it then fails with a
    /// timeout error. At least 1. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECONDS"))]
    pub load_timeout_secs: Option<u64>,
    /// A directory that keeps tokens across runs, for command-line use and
    /// scripts: one encrypted file per client and scope set (mode 0600, in a
    /// directory of mode 0700). The key is `M2M_CACHE_KEY` when set, else
    /// derived from the client's secret or private key. Not with `redis_url`.
    /// The `m2m` command also takes it from `M2M_CACHE_DIR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long = "cache-dir", value_name = "DIR"))]
    pub dir: Option<PathBuf>,
}

/// Hides the password of `redis_url`.
impl std::fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheConfig")
            .field("refresh_buffer_secs", &self.refresh_buffer_secs)
            .field("default_lifetime_secs", &self.default_lifetime_secs)
            .field("max_entries", &self.max_entries)
            .field(
                "redis_url",
                &self
                    .redis_url
                    .as_ref()
                    .map(crate::redaction::redact_password),
            )
            .field("redis_cluster", &self.redis_cluster)
            .field("load_timeout_secs", &self.load_timeout_secs)
            .field("dir", &self.dir)
            .finish()
    }
}

/// The provider variants a client can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ProviderKind {
    /// NxtPort International (Azure AD B2C): `environment` and `tenant_id`.
    Nxtport,
    /// NXTsoft (Cognito-style token server).
    Nxtsoft,
    /// Cenda Configuration API (Entra ID): `tenant_id` (PermissionsTenantId)
    /// and `gateway_client_id`.
    Cenda,
    /// Sequel (Duende IdentityServer): `authentication_server_url`.
    Sequel,
    /// Apiture (OIDC discovery, HTTP Basic): optional `environment`.
    Apiture,
    /// Any OAuth 2.0 server: `token_url` or `discovery_url`.
    Custom,
}

/// An environment of a provider that has several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum EnvironmentName {
    /// NxtPort Live.
    Live,
    /// NxtPort Staging.
    Staging,
    /// Apiture production.
    Production,
    /// Apiture test (CAT).
    Test,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum AuthMethodName {
    /// `client_secret_post`: id and secret in the form body.
    Post,
    /// `client_secret_basic`, RFC 6749 §2.3.1 encoding.
    Basic,
    /// HTTP Basic without the form encoding, for servers that do not decode.
    BasicUnencoded,
    /// Basic and the form body together (Apiture's guide).
    BasicAndPost,
    /// `private_key_jwt` (RFC 7523).
    PrivateKeyJwt,
    /// `tls_client_auth` (RFC 8705 §2.1): the certificate of
    /// `tls_certificate_file` (issued by a CA the server trusts) on the TLS
    /// connection.
    TlsClientAuth,
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2): a self-signed
    /// certificate the server has registered for the client.
    SelfSignedTlsClientAuth,
    /// A client assertion made elsewhere (workload identity federation),
    /// read from `client_assertion_file` at every token request. For the
    /// Entra providers (nxtport, cenda), `AZURE_FEDERATED_TOKEN_FILE` and
    /// `AZURE_CLIENT_ID` are the defaults of the file and the client id.
    ClientAssertion,
}

/// One client: `[clients.<name>]`, or the flags of `m2m token`/`m2m call`.
///
/// Every field is optional in the file so that flags can complete or
/// override it; what a provider needs is checked when the client is used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ClientConfig {
    /// The provider variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub provider: Option<ProviderKind>,
    /// The environment: `live` or `staging` (NxtPort), `production` or
    /// `test` (Apiture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub environment: Option<EnvironmentName>,
    /// The Entra tenant: NxtPort's environment tenant, Cenda's
    /// PermissionsTenantId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "TENANT"))]
    pub tenant_id: Option<String>,
    /// Cenda's GatewayClientId (the scope is `{gateway_client_id}/.default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "ID"))]
    pub gateway_client_id: Option<String>,
    /// Sequel's AuthenticationServerUrl, with its virtual path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "URL"))]
    pub authentication_server_url: Option<Url>,
    /// The token endpoint (overrides the provider's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "URL", conflicts_with = "discovery_url")
    )]
    pub token_url: Option<Url>,
    /// An OpenID Connect discovery document naming the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "URL"))]
    pub discovery_url: Option<Url>,
    /// The Entra host for sovereign clouds (`https://login.microsoftonline.us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "URL"))]
    pub authority_host: Option<Url>,
    /// The API's base URL, with any path prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "URL"))]
    pub api_base_url: Option<Url>,
    /// The client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "ID"))]
    pub client_id: Option<String>,
    /// The environment variable that holds the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "VAR"))]
    pub client_secret_env: Option<String>,
    /// A file that holds the client secret (its whole content, one trailing
    /// newline ignored): a mounted secret, or what `m2m sandbox
    /// --write-config` writes. Keep it readable by you alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub client_secret_file: Option<PathBuf>,
    /// The environment variable that holds a second client secret, for a
    /// rotation without downtime: a token request refused with
    /// `invalid_client` is sent once more with the other secret, and the
    /// one accepted is used from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "VAR"))]
    pub secondary_client_secret_env: Option<String>,
    /// A file holding a client assertion made elsewhere (a Kubernetes
    /// projected service-account token, a CI job's OIDC token), read at
    /// every token request: `auth = "client-assertion"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub client_assertion_file: Option<PathBuf>,
    /// A PEM private key for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub private_key_file: Option<PathBuf>,
    /// The signing algorithm of the key (default: from the key's algorithm
    /// identifier, RS256 for RSA keys, ES256 for P-256 EC keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub key_algorithm: Option<SigningAlgorithm>,
    /// The `kid` the server knows the key by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "KID", conflicts_with = "certificate_file")
    )]
    pub key_id: Option<String>,
    /// The key's X.509 certificate (PEM): its thumbprint becomes `x5t`, as
    /// Entra wants for certificate credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub certificate_file: Option<PathBuf>,
    /// The scopes to ask for (default: the provider's). On the command
    /// line, one scope per `--scope` (repeat it for several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long = "scope", value_name = "SCOPE", action = clap::ArgAction::Append, num_args = 1)
    )]
    pub scopes: Option<Vec<String>>,
    /// An RFC 8707 resource indicator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "URI"))]
    pub resource: Option<String>,
    /// The client-authentication method (default: the provider's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub auth: Option<AuthMethodName>,
    /// Allow plain `http` to a host that is not loopback, for the token
    /// endpoint and the API alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long, num_args = 0, default_missing_value = "true")
    )]
    pub allow_http: Option<bool>,
    /// Refuse a discovery document whose `issuer` is not the discovery URL
    /// less `/.well-known/openid-configuration` (OpenID Connect Discovery
    /// §4.3). Only with `discovery_url` (or a provider found through
    /// discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long, num_args = 0, default_missing_value = "true")
    )]
    pub strict_issuer: Option<bool>,
    /// Timeout of each attempt at the token endpoint, in seconds (default
    /// 10). A token request makes up to 3 attempts, with waits of about
    /// 0.25 s and 0.5 s between them, when the endpoint does not answer or
    /// answers 5xx or 429: an endpoint that never answers costs about
    /// 3 × this (31 s by default) before the command gives up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECONDS"))]
    pub timeout_secs: Option<u64>,
    /// Timeout of one API call (send and read the whole answer), in
    /// seconds. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "SECONDS"))]
    pub api_timeout_secs: Option<u64>,
    /// Largest API answer read, in bytes. Default 16777216 (16 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "BYTES"))]
    pub max_response_bytes: Option<u64>,
    /// DPoP (RFC 9449): tokens bound to a P-256 key made for this process
    /// (one key for every such client of the process), proved with a fresh
    /// proof on the token request and on every API call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long, num_args = 0, default_missing_value = "true")
    )]
    pub dpop: Option<bool>,
    /// DPoP with the P-256 private key in this PEM file (PKCS#8 or SEC1)
    /// instead of a fresh one: its tokens can be cached across runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub dpop_key_file: Option<PathBuf>,
    /// With DPoP, use a Bearer token if the token endpoint answers with one
    /// (it does not do DPoP for this client). Off: that answer is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long, num_args = 0, default_missing_value = "true")
    )]
    pub dpop_allow_bearer: Option<bool>,
    /// Mutual TLS (RFC 8705): the client certificate (PEM, the client's
    /// first), presented to the token endpoint and the API, with
    /// `auth = "tls-client-auth"` or `"self-signed-tls-client-auth"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub tls_certificate_file: Option<PathBuf>,
    /// The private key (PEM) of `tls_certificate_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM bundle) trusted beside the platform's for the
    /// token endpoint, discovery and the API: a private CA's servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub tls_ca_file: Option<PathBuf>,
}

impl ClientConfig {
    /// The settings of this client's API calls: `allow_http`,
    /// `api_timeout_secs`, `max_response_bytes` (neither may be 0).
    pub fn api_settings(&self) -> Result<ApiSettings, String> {
        let mut settings = ApiSettings::default().with_allow_http(self.allow_http.unwrap_or(false));
        match self.api_timeout_secs {
            Some(0) => return Err("api_timeout_secs must be at least 1".to_owned()),
            Some(seconds) => settings = settings.with_timeout(Duration::from_secs(seconds)),
            None => {}
        }
        match self.max_response_bytes {
            Some(0) => return Err("max_response_bytes must be at least 1".to_owned()),
            Some(bytes) => settings = settings.with_max_response_bytes(bytes),
            None => {}
        }
        Ok(settings)
    }

    /// `self` with every field that `overrides` sets replaced.
    pub fn overlaid_with(&self, overrides: &ClientConfig) -> ClientConfig {
        overlay(self, overrides)
    }

    /// The client certificate for mutual TLS (`tls_certificate_file`,
    /// `tls_key_file`, with a `tls-…` auth): `None` when the client does
    /// not authenticate with one.
    pub fn tls_identity(&self) -> Result<Option<TlsIdentity>, String> {
        let tls_auth = matches!(
            self.auth,
            Some(AuthMethodName::TlsClientAuth | AuthMethodName::SelfSignedTlsClientAuth)
        );
        match (&self.tls_certificate_file, &self.tls_key_file, tls_auth) {
            (None, None, false) => Ok(None),
            (Some(certificate), Some(key), true) => {
                TlsIdentity::from_pem_files(certificate, key)
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            (_, _, true) => Err(
                "mutual TLS needs tls_certificate_file and tls_key_file".to_owned(),
            ),
            (_, _, false) => Err(
                "tls_certificate_file and tls_key_file need auth = \"tls-client-auth\" or \"self-signed-tls-client-auth\"".to_owned(),
            ),
        }
    }

    /// DPoP as configured (`dpop`, `dpop_key_file`, `dpop_allow_bearer`):
    /// `None` when the client does not use it.
    pub fn dpop_settings(&self) -> Result<Option<Dpop>, String> {
        let key = match (&self.dpop_key_file, self.dpop) {
            (Some(_), Some(false)) => {
                return Err("dpop_key_file is set and dpop = false: remove one".to_owned());
            }
            (Some(file), _) => DpopKey::from_pem_file(file).map_err(|e| e.to_string())?,
            (None, Some(true)) => DpopKey::for_process().map_err(|e| e.to_string())?,
            (None, _) if self.dpop_allow_bearer.is_some() => {
                return Err("dpop_allow_bearer needs dpop = true or dpop_key_file".to_owned());
            }
            (None, _) => return Ok(None),
        };
        Ok(Some(
            Dpop::new(key).allow_bearer(self.dpop_allow_bearer.unwrap_or(false)),
        ))
    }

    /// The environment variable that overrides this client's secret:
    /// `M2M_<CLIENT>_CLIENT_SECRET`, the name upper-cased with every other
    /// character turned into `_`.
    pub fn secret_override_env(client_name: &str) -> String {
        let name: String = client_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("M2M_{name}_CLIENT_SECRET")
    }
}

impl CacheConfig {
    /// `self` with every field that `overrides` sets replaced.
    pub fn overlaid_with(&self, overrides: &CacheConfig) -> CacheConfig {
        overlay(self, overrides)
    }
}

/// Field-by-field overlay of two all-optional records through their serde
/// form: a field `overrides` sets (not `None`) wins.
fn overlay<T: Serialize + serde::de::DeserializeOwned + Clone>(base: &T, overrides: &T) -> T {
    let (Ok(serde_json::Value::Object(mut merged)), Ok(serde_json::Value::Object(top))) =
        (serde_json::to_value(base), serde_json::to_value(overrides))
    else {
        return base.clone();
    };
    merged.extend(top.into_iter().filter(|(_, v)| !v.is_null()));
    serde_json::from_value(serde_json::Value::Object(merged)).unwrap_or_else(|_| base.clone())
}

/// A configuration that cannot be used. Its Display is one line naming the
/// file, the line and the key where there is one.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file cannot be read.
    #[error("{path}: cannot read the configuration: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not valid: bad TOML, an unknown key, a wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// No client of that name.
    #[error("no client named {name:?} in {source_name}{known}")]
    UnknownClient {
        /// The requested name.
        name: String,
        /// Where clients were looked for.
        source_name: String,
        /// The names that exist, formatted for the message.
        known: KnownClients,
    },
    /// The `[cache]` section cannot be used.
    #[error("[cache]: {message}")]
    Cache {
        /// What is wrong.
        message: String,
    },
    /// A client lacks something its provider needs, or has a contradiction.
    #[error("client {client:?}: {message}")]
    Client {
        /// The client's name.
        client: String,
        /// What is missing or wrong, naming the key.
        message: String,
    },
}

/// The client names of a configuration, for error messages.
#[derive(Debug, Clone, Default)]
pub struct KnownClients(pub Vec<String>);

impl fmt::Display for KnownClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(" (it declares none)")
        } else {
            write!(f, " (it declares: {})", self.0.join(", "))
        }
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigFileError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// The file named by `M2M_CONFIG`, else `./m2m.toml`; an absent default
    /// file is an empty configuration (flags may describe the client).
    pub fn load_default() -> Result<Config, ConfigFileError> {
        match std::env::var_os(CONFIG_ENV) {
            Some(path) => Self::load(PathBuf::from(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => Self::load(DEFAULT_CONFIG_FILE),
            None => Ok(Config::default()),
        }
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: impl AsRef<Path>) -> Result<Config, ConfigFileError> {
        let invalid = |error: toml::de::Error, key: Option<String>| {
            let (line, column) = error
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            let message = error.message().trim().replace('\n', " ");
            ConfigFileError::Invalid {
                path: origin.as_ref().to_owned(),
                line,
                column,
                message: match key {
                    Some(key) => format!("`{key}`: {message}"),
                    None => message,
                },
            }
        };
        let document = toml::Deserializer::parse(text).map_err(|e| invalid(e, None))?;
        serde_path_to_error::deserialize(document).map_err(|e| {
            // The dotted path of the key the error is about (`cache.max_entries`);
            // `.` alone when it is about the whole file.
            let key = e.path().to_string();
            invalid(e.into_inner(), (key != ".").then_some(key))
        })
    }

    /// The client called `name`.
    pub fn client(&self, name: &str) -> Result<&ClientConfig, ConfigFileError> {
        self.clients
            .get(name)
            .ok_or_else(|| ConfigFileError::UnknownClient {
                name: name.to_owned(),
                source_name: "the configuration".to_owned(),
                known: KnownClients(self.clients.keys().cloned().collect()),
            })
    }

    /// The JSON Schema of the file, as `m2m schema` prints it.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default()
    }
}

impl Config {
    /// The token endpoint of the client called `name`, ready to build (a
    /// builder, so a caller can still set a clock, retries, …).
    pub fn token_endpoint(&self, name: &str) -> Result<TokenEndpointBuilder, ConfigFileError> {
        self.token_endpoint_for(name, self.client(name)?)
    }

    /// The token endpoint of `client` (for instance a file's client with
    /// command-line flags laid over it), named `name` in errors.
    pub fn token_endpoint_for(
        &self,
        name: &str,
        client: &ClientConfig,
    ) -> Result<TokenEndpointBuilder, ConfigFileError> {
        let fail = |message: String| ConfigFileError::Client {
            client: name.to_owned(),
            message,
        };
        let provider = client.provider().map_err(fail)?;
        let client_id = client.client_id().map_err(fail)?;
        let credential = client.credential(name).map_err(fail)?;
        let mut builder = TokenEndpoint::builder(provider, client_id, credential)
            .allow_http(client.allow_http.unwrap_or(false))
            .strict_issuer(client.strict_issuer.unwrap_or(false));
        if let Some(scopes) = &client.scopes {
            builder = builder.scopes(scopes.iter());
        }
        if let Some(resource) = &client.resource {
            builder = builder.resource(resource.clone());
        }
        if let Some(method) = client.auth {
            builder = builder.client_auth(method.into());
        }
        if let Some(seconds) = client.timeout_secs {
            builder = builder.http_settings(
                crate::auth::HttpSettings::default().with_timeout(Duration::from_secs(seconds)),
            );
        }
        if let Some(dpop) = client.dpop_settings().map_err(fail)? {
            builder = builder.dpop(dpop);
        }
        if let Some(file) = &client.tls_ca_file {
            let roots =
                TlsRoots::from_pem_file(file).map_err(|e| fail(format!("tls_ca_file: {e}")))?;
            builder = builder.tls_roots(roots);
        }
        if let Some(seconds) = self.cache.default_lifetime_secs {
            builder = builder.lifetimes(
                crate::auth::TokenLifetimes::default().with_default(Duration::from_secs(seconds)),
            );
        }
        Ok(builder)
    }

    /// A new token cache with the `[cache]` settings, of the caller's own:
    /// the explicit choice of a private cache (most callers want the one
    /// the configuration owns, [`Config::token_cache`]). In this process, with
    /// Redis behind it when `redis_url` is set (feature `redis`; the
    /// encryption key, if any, comes from `M2M_CACHE_KEY`). Redis that does
    /// not answer yet is not an error: the cache fetches directly until it
    /// does.
    ///
    /// With `[cache] dir`, the tokens go to files there, encrypted with the
    /// key in `M2M_CACHE_KEY` (required here, as the cache may serve several
    /// clients); [`Config::new_token_cache_for`] can derive the key from one
    /// client's secret instead.
    pub async fn new_token_cache(&self) -> Result<TokenCache, ConfigFileError> {
        self.token_cache_with(None).await
    }

    /// The token cache for the client called `name` alone: as
    /// [`Config::new_token_cache`], but with `[cache] dir` and no
    /// `M2M_CACHE_KEY`, the files' key is derived from this client's secret
    /// (or private key), so no other secret has to be managed.
    pub async fn new_token_cache_for(&self, name: &str) -> Result<TokenCache, ConfigFileError> {
        self.token_cache_with(Some(name)).await
    }

    async fn token_cache_with(&self, client: Option<&str>) -> Result<TokenCache, ConfigFileError> {
        let mut settings = CacheSettings::default();
        if let Some(seconds) = self.cache.refresh_buffer_secs {
            settings.refresh_before = Duration::from_secs(seconds);
        }
        match self.cache.load_timeout_secs {
            Some(0) => {
                return Err(ConfigFileError::Cache {
                    message: "load_timeout_secs must be at least 1".to_owned(),
                });
            }
            Some(seconds) => settings.load_timeout = Duration::from_secs(seconds),
            None => {}
        }
        let capacity = self
            .cache
            .max_entries
            .unwrap_or(MemoryStore::DEFAULT_CAPACITY);
        let cluster = self.cache.redis_cluster.unwrap_or(false);
        if cluster && self.cache.redis_url.is_none() {
            return Err(ConfigFileError::Cache {
                message: "redis_cluster is set without redis_url".to_owned(),
            });
        }
        let store: Arc<dyn crate::auth::TokenStore> = match (&self.cache.redis_url, &self.cache.dir)
        {
            (None, None) => Arc::new(MemoryStore::with_capacity(capacity)),
            (Some(url), None) => redis_store(url, cluster, capacity).await?,
            (None, Some(dir)) => Arc::new(self.file_store(dir, client)?),
            (Some(_), Some(_)) => {
                return Err(ConfigFileError::Cache {
                    message: "set redis_url or dir, not both".to_owned(),
                });
            }
        };
        Ok(TokenCache::new(
            store,
            Arc::new(SystemClock),
            Arc::new(RandomJitter),
            settings,
        ))
    }

    /// The file store in `dir`, its key from `M2M_CACHE_KEY` or else from
    /// the secret of `client`.
    fn file_store(&self, dir: &Path, client: Option<&str>) -> Result<FileStore, ConfigFileError> {
        let invalid = |message: String| ConfigFileError::Cache { message };
        let key = match CacheEncryptionKey::from_env().map_err(|e| invalid(e.to_string()))? {
            Some(key) => key,
            None => {
                let Some(name) = client else {
                    return Err(invalid(format!(
                        "dir needs {} (a cache shared by several clients has no one secret to derive its key from)",
                        CacheEncryptionKey::ENV_VAR
                    )));
                };
                let material = self
                    .client(name)?
                    .secret_material(name)
                    .map_err(|message| ConfigFileError::Client {
                        client: name.to_owned(),
                        message,
                    })?;
                CacheEncryptionKey::derive_from_secret(material.expose_secret())
                    .map_err(|e| invalid(e.to_string()))?
            }
        };
        FileStore::open(dir, key).map_err(|e| invalid(e.to_string()))
    }

    /// The token cache this configuration owns, with the `[cache]`
    /// settings (see [`Config::new_token_cache`]): made on first use, then the
    /// same for every call and every clone of the configuration, so that
    /// every client made from one configuration shares tokens. With Redis
    /// (`redis_url`) the connection is made on first use of the store;
    /// making the cache needs a Tokio runtime then.
    pub fn token_cache(&self) -> Result<TokenCache, ConfigFileError> {
        if let Some(cache) = self.owned_cache.0.get() {
            return Ok(cache.clone());
        }
        let made =
            now_or_never(self.token_cache_with(None)).ok_or_else(|| ConfigFileError::Cache {
                message: "the token cache could not be made without waiting".to_owned(),
            })??;
        // Two threads may race to make it: the first one kept wins.
        Ok(self.owned_cache.0.get_or_init(|| made).clone())
    }

    /// The auth handle of the client called `name`, over the token cache
    /// this configuration owns ([`Config::token_cache`]). Every
    /// generated `Client::from_config` uses it.
    pub fn auth(&self, name: &str) -> Result<Auth, ConfigFileError> {
        self.auth_with_cache(name, &self.token_cache()?)
    }

    /// The auth handle of the client called `name`, over `cache` (the
    /// explicit choice of another cache than the configuration's own).
    ///
    /// Most services need neither: `Client::from_config(&config, "cenda")`
    /// does it all, over the cache the configuration owns.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = m2m::config::Config::load_default()?;
    /// let auth = config.auth_with_cache("cenda", &config.new_token_cache().await?)?;
    /// let base_url = config.api_base_url("cenda")?;
    /// let cenda = m2m::apis::cenda_configuration::Client::from_auth(base_url.as_str(), auth)?;
    /// # Ok(()) }
    /// ```
    pub fn auth_with_cache(&self, name: &str, cache: &TokenCache) -> Result<Auth, ConfigFileError> {
        let fail = |message: String| ConfigFileError::Client {
            client: name.to_owned(),
            message,
        };
        let api = self.client(name)?.api_settings().map_err(fail)?;
        let endpoint = self
            .token_endpoint(name)?
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Auth::named(name, endpoint, cache).with_api_settings(api))
    }

    /// The API base URL of the client called `name`: its `api_base_url`,
    /// else its provider's.
    pub fn api_base_url(&self, name: &str) -> Result<Url, ConfigFileError> {
        let client = self.client(name)?;
        client
            .provider()
            .ok()
            .and_then(|provider| provider.api_base_url())
            .ok_or_else(|| ConfigFileError::Client {
                client: name.to_owned(),
                message: "no API base URL: set api_base_url".to_owned(),
            })
    }
}

impl ClientConfig {
    /// The provider this client describes, with its URL overrides.
    pub fn provider(&self) -> Result<Provider, String> {
        let kind = self.provider.ok_or_else(|| {
            "provider is required (nxtport, nxtsoft, cenda, sequel, apiture or custom)".to_owned()
        })?;
        let required = |value: &Option<String>, key: &str| {
            value
                .clone()
                .ok_or_else(|| format!("provider {} needs {key}", kind.name()))
        };
        let mut provider = match kind {
            ProviderKind::Nxtport => {
                let environment = match self.environment {
                    Some(EnvironmentName::Live) => NxtPortEnvironment::Live,
                    Some(EnvironmentName::Staging) => NxtPortEnvironment::Staging,
                    _ => {
                        return Err(
                            "provider nxtport needs environment = \"live\" or \"staging\""
                                .to_owned(),
                        );
                    }
                };
                Provider::nxtport(environment, required(&self.tenant_id, "tenant_id")?)
            }
            ProviderKind::Nxtsoft => Provider::nxtsoft(),
            ProviderKind::Cenda => Provider::cenda(
                required(&self.tenant_id, "tenant_id (the PermissionsTenantId)")?,
                required(&self.gateway_client_id, "gateway_client_id")?,
            ),
            ProviderKind::Sequel => Provider::sequel(
                self.authentication_server_url
                    .clone()
                    .ok_or_else(|| "provider sequel needs authentication_server_url".to_owned())?,
            ),
            ProviderKind::Apiture => Provider::apiture(match self.environment {
                None | Some(EnvironmentName::Production) => ApitureEnvironment::Production,
                Some(EnvironmentName::Test) => ApitureEnvironment::Test,
                Some(_) => {
                    return Err(
                        "provider apiture takes environment = \"production\" or \"test\""
                            .to_owned(),
                    );
                }
            }),
            ProviderKind::Custom => match (&self.token_url, &self.discovery_url) {
                (Some(url), _) => Provider::custom_token_url(url.clone()),
                (None, Some(url)) => Provider::custom_discovery(url.clone()),
                (None, None) => {
                    return Err("provider custom needs token_url or discovery_url".to_owned());
                }
            },
        };
        if let Some(url) = &self.authority_host {
            provider = provider.with_authority_host(url.clone());
        }
        if let Some(url) = &self.token_url {
            provider = provider.with_token_url(url.clone());
        }
        if let Some(url) = &self.discovery_url {
            provider = provider.with_discovery_url(url.clone());
        }
        if let Some(url) = &self.api_base_url {
            provider = provider.with_api_base_url(url.clone());
        }
        Ok(provider)
    }

    /// Whether this client sends a client assertion made elsewhere:
    /// `auth = "client-assertion"`, or `client_assertion_file` without
    /// another `auth`.
    fn uses_client_assertion(&self) -> bool {
        match self.auth {
            Some(AuthMethodName::ClientAssertion) => true,
            None => self.client_assertion_file.is_some(),
            Some(_) => false,
        }
    }

    /// Whether the provider is one of the Entra providers, whose federated
    /// clients take their defaults from the workload identity webhook's
    /// variables.
    fn is_entra(&self) -> bool {
        matches!(
            self.provider,
            Some(ProviderKind::Nxtport | ProviderKind::Cenda)
        )
    }

    /// The client id: `client_id`, else, for a federated client of an
    /// Entra provider, `AZURE_CLIENT_ID`.
    fn client_id(&self) -> Result<String, String> {
        if let Some(id) = &self.client_id {
            return Ok(id.clone());
        }
        if self.uses_client_assertion() && self.is_entra() {
            return non_empty_env(AZURE_CLIENT_ID)?.ok_or_else(|| {
                format!("client_id is required (or {AZURE_CLIENT_ID}, as the workload identity webhook sets it)")
            });
        }
        Err("client_id is required".to_owned())
    }

    /// The client assertion file: `client_assertion_file`, else, for an
    /// Entra provider, `AZURE_FEDERATED_TOKEN_FILE`.
    fn assertion_file(&self) -> Result<PathBuf, String> {
        if let Some(file) = &self.client_assertion_file {
            return Ok(file.clone());
        }
        if self.is_entra()
            && let Some(file) = non_empty_env(AZURE_FEDERATED_TOKEN_FILE)?
        {
            return Ok(PathBuf::from(file));
        }
        Err(if self.is_entra() {
            format!(
                "auth client-assertion needs client_assertion_file (or {AZURE_FEDERATED_TOKEN_FILE}, as the workload identity webhook sets it)"
            )
        } else {
            "auth client-assertion needs client_assertion_file".to_owned()
        })
    }

    /// Where the first client secret is: `M2M_<CLIENT>_CLIENT_SECRET`, else
    /// the variable named by `client_secret_env`, else `client_secret_file`.
    /// `Ok(None)` when the client uses a private key or an assertion.
    fn first_secret(&self, client_name: &str) -> Result<Option<FirstSecret>, String> {
        let override_var = Self::secret_override_env(client_name);
        if let Some(secret) = non_empty_env(&override_var)? {
            return Ok(Some(FirstSecret::Value(secret)));
        }
        if let Some(var) = &self.client_secret_env {
            return non_empty_env(var)?
                .map(|secret| Some(FirstSecret::Value(secret)))
                .ok_or_else(|| format!("client_secret_env names {var}, which is not set"));
        }
        if let Some(file) = &self.client_secret_file {
            return Ok(Some(FirstSecret::File(file.clone())));
        }
        if self.private_key_file.is_none() && !self.uses_client_assertion() {
            return Err(format!(
                "no credential: set client_secret_env (or {override_var}), client_secret_file, private_key_file or client_assertion_file"
            ));
        }
        Ok(None)
    }

    /// The secret the client authenticates with, as bytes: its TLS key
    /// file, its first client secret, or its private key file. What a file
    /// cache's key is derived from when no `M2M_CACHE_KEY` is given.
    /// Every file is read within its kind's limit, like a credential.
    fn secret_material(&self, client_name: &str) -> Result<secrecy::SecretSlice<u8>, String> {
        let read = |kind, path: &Path| {
            CredentialFile::new(kind, path)
                .read_blocking()
                .map_err(|e| e.to_string())
        };
        if let (Some(_), Some(key_file)) = (self.tls_identity()?, &self.tls_key_file) {
            return read(CredentialKind::PrivateKey, key_file);
        }
        if self.uses_client_assertion() {
            return Err(format!(
                "a client-assertion client has no lasting secret to derive the token cache's key from: set {}",
                CacheEncryptionKey::ENV_VAR
            ));
        }
        match self.first_secret(client_name)? {
            Some(FirstSecret::Value(secret)) => Ok(secret.into_bytes().into()),
            Some(FirstSecret::File(path)) => {
                let text =
                    read_text(CredentialKind::ClientSecret, &path).map_err(|e| e.to_string())?;
                Ok(text.expose_secret().as_bytes().to_vec().into())
            }
            None => {
                let key_file = self.private_key_file.as_ref().ok_or("no credential")?;
                read(CredentialKind::PrivateKey, key_file)
            }
        }
    }

    /// The credential: the TLS certificate and key (`tls_certificate_file`,
    /// `tls_key_file`, read again at every token request) for mutual TLS,
    /// else a client assertion file
    /// (`auth = "client-assertion"`), else the first secret (`M2M_<CLIENT>_CLIENT_SECRET`, the variable
    /// named by `client_secret_env`, or `client_secret_file`, read again
    /// when it changes) with `secondary_client_secret_env` as the second,
    /// else the key in `private_key_file` (read again when it or
    /// `certificate_file` changes).
    pub fn credential(&self, client_name: &str) -> Result<ClientCredential, String> {
        if let (Some(_), Some(certificate), Some(key)) = (
            self.tls_identity()?,
            &self.tls_certificate_file,
            &self.tls_key_file,
        ) {
            return TlsIdentityFiles::load(certificate, key)
                .map(ClientCredential::TlsCertificateFiles)
                .map_err(|e| e.to_string());
        }
        if self.uses_client_assertion() {
            if self.client_secret_env.is_some()
                || self.client_secret_file.is_some()
                || self.private_key_file.is_some()
            {
                return Err(
                    "a client-assertion client takes no client_secret_env, client_secret_file or private_key_file: remove them, or set auth to the method of the secret or key"
                        .to_owned(),
                );
            }
            return Ok(ClientCredential::assertion_file(self.assertion_file()?));
        }
        let second = match &self.secondary_client_secret_env {
            Some(var) => Some(non_empty_env(var)?.ok_or_else(|| {
                format!("secondary_client_secret_env names {var}, which is not set")
            })?),
            None => None,
        };
        match (self.first_secret(client_name)?, second) {
            (Some(FirstSecret::Value(secret)), None) => {
                return Ok(ClientCredential::secret(secret));
            }
            (Some(first), second) => {
                let secrets = match first {
                    FirstSecret::Value(secret) => ClientSecrets::new(secret.into()),
                    FirstSecret::File(path) => {
                        ClientSecrets::from_file(path).map_err(|e| e.to_string())?
                    }
                };
                return Ok(match second {
                    Some(second) => secrets.second(second.into()),
                    None => secrets,
                }
                .into());
            }
            (None, Some(_)) => {
                return Err(
                    "secondary_client_secret_env needs a first secret (client_secret_env or client_secret_file)"
                        .to_owned(),
                );
            }
            (None, None) => {}
        }
        let Some(key_file) = &self.private_key_file else {
            return Err("no credential".to_owned());
        };
        let name = match (&self.key_id, &self.certificate_file) {
            (Some(kid), _) => KeyName::Kid(kid.clone()),
            (None, Some(certificate)) => KeyName::CertificateFile(certificate.clone()),
            (None, None) => {
                return Err("private_key_file needs key_id or certificate_file".to_owned());
            }
        };
        PrivateKeyFiles::load(key_file, self.key_algorithm, name)
            .map(ClientCredential::from)
            .map_err(|e| e.to_string())
    }
}

/// Where a client's first secret is.
enum FirstSecret {
    /// Its value (from an environment variable).
    Value(String),
    /// A file, read again when it changes.
    File(PathBuf),
}

#[cfg(feature = "redis")]
async fn redis_store(
    url: &Url,
    cluster: bool,
    local_capacity: usize,
) -> Result<Arc<dyn crate::auth::TokenStore>, ConfigFileError> {
    use crate::auth::RedisStore;
    let invalid = |message: String| ConfigFileError::Cache { message };
    let config = redis_config(url, cluster, local_capacity)?;
    let store = RedisStore::connect_lazy(config)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Arc::new(store))
}

/// The Redis store's settings from `[cache]` (the key from `M2M_CACHE_KEY`).
#[cfg(feature = "redis")]
fn redis_config(
    url: &Url,
    cluster: bool,
    local_capacity: usize,
) -> Result<crate::auth::RedisStoreConfig, ConfigFileError> {
    crate::auth::RedisStoreConfig::new(url.clone())
        .cluster(cluster)
        .local_capacity(local_capacity)
        .encryption_key_from_env()
        .map_err(|e| ConfigFileError::Cache {
            message: e.to_string(),
        })
}

#[cfg(not(feature = "redis"))]
async fn redis_store(
    _url: &Url,
    _cluster: bool,
    _local_capacity: usize,
) -> Result<Arc<dyn crate::auth::TokenStore>, ConfigFileError> {
    Err(ConfigFileError::Cache {
        message: "redis_url is set, but this build of m2m has no `redis` feature".to_owned(),
    })
}

/// The output of `future` if it is ready at once. Making a token cache
/// waits for nothing (the Redis store connects on first use): this keeps
/// [`Config::token_cache`] synchronous.
fn now_or_never<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// The value of the variable `name`: `None` when it is not set, an error
/// naming it when it is set but empty or not Unicode (never the value).
fn non_empty_env(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        // Blank is a mistake too (a client id, a secret, a file name of
        // spaces): named, not passed on.
        Ok(value) if value.is_empty() => Err(format!("the environment variable {name} is empty")),
        Ok(value) if value.trim().is_empty() => {
            Err(format!("the environment variable {name} is blank"))
        }
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!(
            "the environment variable {name} is not valid Unicode"
        )),
    }
}

impl ProviderKind {
    /// The name used in the file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nxtport => "nxtport",
            Self::Nxtsoft => "nxtsoft",
            Self::Cenda => "cenda",
            Self::Sequel => "sequel",
            Self::Apiture => "apiture",
            Self::Custom => "custom",
        }
    }
}

impl From<AuthMethodName> for ClientAuthMethod {
    fn from(name: AuthMethodName) -> Self {
        match name {
            AuthMethodName::Post => ClientAuthMethod::ClientSecretPost,
            AuthMethodName::Basic => ClientAuthMethod::ClientSecretBasic,
            AuthMethodName::BasicUnencoded => ClientAuthMethod::ClientSecretBasicUnencoded,
            AuthMethodName::BasicAndPost => ClientAuthMethod::ClientSecretBasicAndPost,
            AuthMethodName::PrivateKeyJwt => ClientAuthMethod::PrivateKeyJwt,
            AuthMethodName::TlsClientAuth => ClientAuthMethod::TlsClientAuth,
            AuthMethodName::SelfSignedTlsClientAuth => ClientAuthMethod::SelfSignedTlsClientAuth,
            AuthMethodName::ClientAssertion => ClientAuthMethod::ClientAssertion,
        }
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[cache]
refresh_buffer_secs = 120

[clients.cenda]
provider = "cenda"
tenant_id = "tenant"
gateway_client_id = "gateway"
client_id = "client"
client_secret_env = "CENDA_SECRET"

[clients.sequel]
provider = "sequel"
authentication_server_url = "https://security.example/Authentication"
client_id = "app.client"
scopes = ["app.scope1", "app.scope2"]
auth = "basic"
"#;

    #[test]
    fn parses_clients_and_cache() {
        let config = Config::parse(SAMPLE, "m2m.toml").unwrap();
        assert_eq!(config.cache.refresh_buffer_secs, Some(120));
        let cenda = config.client("cenda").unwrap();
        assert_eq!(cenda.provider, Some(ProviderKind::Cenda));
        assert_eq!(cenda.client_secret_env.as_deref(), Some("CENDA_SECRET"));
        let sequel = config.client("sequel").unwrap();
        assert_eq!(sequel.auth, Some(AuthMethodName::Basic));
        assert_eq!(sequel.scopes.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn unknown_key_names_the_key_and_the_line() {
        let text = "[clients.a]\nprovider = \"nxtsoft\"\nclient_secret = \"oops\"\n";
        let err = Config::parse(text, "m2m.toml").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "m2m.toml:3:1: `clients.a.client_secret`: unknown field `client_secret`"
            ),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn wrong_type_names_the_key_and_the_line() {
        let text = "[cache]\nmax_entries = \"many\"\n";
        let err = Config::parse(text, "x.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("x.toml:2:15: `cache.max_entries`: invalid type"),
            "{err}"
        );
        let text = "[clients.cenda]\nprovider = \"cenda\"\nscopes = \"a b\"\n";
        let err = Config::parse(text, "x.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("x.toml:3:10: `clients.cenda.scopes`: invalid type"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_load_timeout_comes_from_the_cache_section() {
        let config = Config::parse("[cache]\nload_timeout_secs = 5\n", "m2m.toml").unwrap();
        let cache = config.new_token_cache().await.unwrap();
        assert_eq!(cache.settings().load_timeout, Duration::from_secs(5));
        let default = Config::default().new_token_cache().await.unwrap();
        assert_eq!(default.settings().load_timeout, Duration::from_secs(60));
        let zero = Config::parse("[cache]\nload_timeout_secs = 0\n", "m2m.toml").unwrap();
        let error = zero.new_token_cache().await.unwrap_err().to_string();
        assert_eq!(error, "[cache]: load_timeout_secs must be at least 1");
    }

    #[tokio::test]
    async fn redis_cluster_takes_the_url_as_a_seed_node() {
        let alone = Config::parse("[cache]\nredis_cluster = true\n", "m2m.toml").unwrap();
        let error = alone.new_token_cache().await.unwrap_err().to_string();
        assert_eq!(error, "[cache]: redis_cluster is set without redis_url");
        #[cfg(feature = "redis")]
        {
            let text = "[cache]\nredis_url = \"redis://127.0.0.1:1/\"\nredis_cluster = true\n";
            let config = Config::parse(text, "m2m.toml").unwrap();
            config.new_token_cache().await.unwrap();
            let url = config.cache.redis_url.as_ref().unwrap();
            let redis = redis_config(url, true, 8).unwrap();
            assert!(redis.is_cluster());
            assert_eq!(redis.redacted_url(), "cluster:redis://127.0.0.1:1/");
        }
    }

    #[test]
    fn debug_hides_the_redis_password() {
        let text = "[cache]\nredis_url = \"rediss://user:hunter2-redis@cache.test:6380/0\"\n";
        let config = Config::parse(text, "x.toml").unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2-redis"), "{debug}");
        assert!(
            debug.contains("rediss://user:redacted@cache.test:6380/0"),
            "{debug}"
        );
    }

    #[test]
    fn unknown_client_lists_the_known_ones() {
        let config = Config::parse(SAMPLE, "m2m.toml").unwrap();
        let err = config.client("nope").unwrap_err().to_string();
        assert_eq!(
            err,
            "no client named \"nope\" in the configuration (it declares: cenda, sequel)"
        );
    }

    #[test]
    fn flags_overlay_the_file() {
        let config = Config::parse(SAMPLE, "m2m.toml").unwrap();
        let flags = ClientConfig {
            client_id: Some("other".into()),
            ..ClientConfig::default()
        };
        let merged = config.client("cenda").unwrap().overlaid_with(&flags);
        assert_eq!(merged.client_id.as_deref(), Some("other"));
        assert_eq!(merged.tenant_id.as_deref(), Some("tenant"));
    }

    #[test]
    fn provider_needs_name_the_missing_key() {
        let client = |text: &str| -> ClientConfig {
            let config = Config::parse(&format!("[clients.c]\n{text}"), "m2m.toml").unwrap();
            config.clients["c"].clone()
        };
        assert!(
            client("")
                .provider()
                .unwrap_err()
                .contains("provider is required")
        );
        assert_eq!(
            client("provider = \"cenda\"\ntenant_id = \"t\"")
                .provider()
                .unwrap_err(),
            "provider cenda needs gateway_client_id"
        );
        assert!(
            client("provider = \"nxtport\"\ntenant_id = \"t\"")
                .provider()
                .unwrap_err()
                .contains("environment")
        );
        assert_eq!(
            client("provider = \"custom\"").provider().unwrap_err(),
            "provider custom needs token_url or discovery_url"
        );
        let sequel = client(
            "provider = \"sequel\"\nauthentication_server_url = \"https://s.example/Authentication\"",
        )
        .provider()
        .unwrap();
        assert_eq!(sequel.name(), "sequel");
        let overridden =
            client("provider = \"nxtsoft\"\napi_base_url = \"http://127.0.0.1:9/nxtsoft\"")
                .provider()
                .unwrap();
        assert_eq!(
            overridden.api_base_url().unwrap().as_str(),
            "http://127.0.0.1:9/nxtsoft"
        );
    }

    #[test]
    fn a_client_without_credential_names_the_keys_to_set() {
        let config = Config::parse(
            "[clients.nocred]\nprovider = \"nxtsoft\"\nclient_id = \"id\"\n",
            "m2m.toml",
        )
        .unwrap();
        let err = config.token_endpoint("nocred").err().unwrap().to_string();
        assert!(err.starts_with("client \"nocred\": no credential"), "{err}");
        assert!(err.contains("M2M_NOCRED_CLIENT_SECRET"), "{err}");
    }

    #[test]
    fn tls_ca_file_is_trusted_by_the_token_endpoint_and_the_api_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            include_str!("../tests/fixtures/loopback-server-cert.pem"),
        )
        .unwrap();
        let text = |file: &Path| {
            format!(
                "[clients.private]\nprovider = \"nxtsoft\"\nclient_id = \"id\"\nclient_secret_file = \"{}\"\ntls_ca_file = \"{}\"\n",
                ca.display(),
                file.display()
            )
        };
        let config = Config::parse(&text(&ca), "m2m.toml").unwrap();
        let endpoint = config.token_endpoint("private").unwrap().build().unwrap();
        let roots = endpoint.tls_roots().expect("the CA file's roots").clone();
        assert_eq!(roots.len(), 1);
        let auth = config
            .auth_with_cache("private", &TokenCache::in_memory())
            .unwrap();
        assert_eq!(auth.api_settings().tls_roots.as_ref(), Some(&roots));

        let missing = dir.path().join("missing.pem");
        let config = Config::parse(&text(&missing), "m2m.toml").unwrap();
        let err = config.token_endpoint("private").err().unwrap().to_string();
        assert!(err.contains("tls_ca_file"), "{err}");
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    /// The key of a client's file cache is derived from its key file, read
    /// within the limit of every key file (read whole before).
    #[tokio::test]
    async fn the_file_caches_key_is_derived_from_a_key_file_read_within_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, vec![b'#'; 2 * 1024 * 1024]).unwrap();
        let text = format!(
            "[cache]\ndir = \"{}\"\n[clients.big]\nprovider = \"nxtsoft\"\nclient_id = \"id\"\nprivate_key_file = \"{}\"\n",
            dir.path().join("cache").display(),
            key.display()
        );
        let config = Config::parse(&text, "m2m.toml").unwrap();
        let err = config
            .new_token_cache_for("big")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("larger than 1048576 bytes"), "{err}");
        assert!(err.contains("key.pem"), "{err}");
    }

    #[test]
    fn api_limits_come_from_the_client_and_zero_is_refused() {
        let client = |text: &str| -> ClientConfig {
            let config = Config::parse(&format!("[clients.c]\n{text}"), "m2m.toml").unwrap();
            config.clients["c"].clone()
        };
        assert_eq!(client("").api_settings(), Ok(ApiSettings::default()));
        let set = client("api_timeout_secs = 2\nmax_response_bytes = 1024\nallow_http = true")
            .api_settings()
            .unwrap();
        assert_eq!(set.timeout, Duration::from_secs(2));
        assert_eq!(set.max_response_bytes, 1024);
        assert!(set.allow_http);
        assert_eq!(
            client("api_timeout_secs = 0").api_settings(),
            Err("api_timeout_secs must be at least 1".to_owned())
        );
        assert_eq!(
            client("max_response_bytes = 0").api_settings(),
            Err("max_response_bytes must be at least 1".to_owned())
        );
        let err = Config::parse("[clients.c]\napi_timeout_secs = -1\n", "m2m.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("m2m.toml:2:20: `clients.c.api_timeout_secs`"),
            "{err}"
        );
    }

    #[test]
    fn secret_override_variable_name() {
        assert_eq!(
            ClientConfig::secret_override_env("cenda-prod"),
            "M2M_CENDA_PROD_CLIENT_SECRET"
        );
    }
}
