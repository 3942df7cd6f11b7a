//! Which client a command works with: a client of the configuration file,
//! completed or overridden by flags, or one described by flags alone.

use clap::Args;
use std::time::Duration;

use m2m::auth::{
    Auth, AuthError, CachedTokenSource, HttpSettings, RetryPolicy, TokenCache, TransportErrorKind,
};
use m2m::config::{CACHE_DIR_ENV, CacheConfig, ClientConfig, Config};

use crate::failure::Failure;

/// The name given to a client described on the command line alone.
pub const COMMAND_LINE_CLIENT: &str = "command-line";

/// Client and cache flags, shared by `m2m token` and `m2m call`.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub client: ClientConfig,
    #[command(flatten)]
    pub cache: CacheConfig,
}

/// A client ready to use.
pub struct ResolvedClient {
    /// Its name (the file's, or `command-line`).
    pub name: String,
    /// Its settings, flags applied.
    pub settings: ClientConfig,
    /// The token source behind `auth`, for its counters.
    pub source: CachedTokenSource,
    /// The auth handle.
    pub auth: Auth,
}

/// The name and settings of the client `name` (or of the flags alone),
/// flags laid over the file's; nothing is checked or created yet.
pub fn settings(
    config: &Config,
    name: Option<&str>,
    args: &ClientArgs,
) -> Result<(String, ClientConfig), Failure> {
    let flags_describe_a_client = args.client != ClientConfig::default();
    let (name, base) = match name {
        Some(name) => (name.to_owned(), config.client(name)?.clone()),
        None if flags_describe_a_client => {
            (COMMAND_LINE_CLIENT.to_owned(), ClientConfig::default())
        }
        None => {
            let known: Vec<_> = config.clients.keys().cloned().collect();
            return Err(Failure::usage(if known.is_empty() {
                "no client: name one from m2m.toml, or describe one with --provider, --client-id, …"
                    .to_owned()
            } else {
                format!(
                    "no client: name one of {} or describe one with --provider, …",
                    known.join(", ")
                )
            }));
        }
    };
    Ok((name, base.overlaid_with(&args.client)))
}

/// Resolves `name` (or the flags alone) into a client with its token cache.
pub async fn resolve(
    config: &Config,
    name: Option<&str>,
    args: &ClientArgs,
) -> Result<ResolvedClient, Failure> {
    let (name, settings) = self::settings(config, name, args)?;
    let from_env = CacheConfig {
        dir: std::env::var_os(CACHE_DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map(Into::into),
        ..CacheConfig::default()
    };
    let mut effective = Config::default();
    effective.cache = config
        .cache
        .overlaid_with(&from_env)
        .overlaid_with(&args.cache);
    effective.clients.insert(name.clone(), settings.clone());
    let endpoint = effective
        .token_endpoint(&name)?
        .build()
        .map_err(|e| Failure::usage(format!("client {name:?}: {e}")))?;
    let api = settings
        .api_settings()
        .map_err(|e| Failure::usage(format!("client {name:?}: {e}")))?;
    let cache: TokenCache = effective.new_token_cache_for(&name).await?;
    let key = m2m::auth::CacheKey::for_endpoint(endpoint.identity());
    // The API calls prove DPoP tokens with the endpoint's key, present its
    // client certificate and trust its CA roots, as `Auth::new` does.
    let dpop = endpoint.dpop().cloned();
    let api = api.with_tls_of(&endpoint);
    let source = cache.source(key, std::sync::Arc::new(endpoint));
    let mut auth = Auth::from_source(source.clone()).with_api_settings(api);
    if let Some(dpop) = dpop {
        auth = auth.with_dpop(dpop);
    }
    Ok(ResolvedClient {
        name,
        settings,
        source,
        auth,
    })
}

/// The failure for a token that could not be had: exit 2 when the settings
/// are at fault, 1 when the server said no or could not be reached. A
/// timeout says how long each attempt waited and how many were made.
pub fn token_failure(client: &str, settings: &ClientConfig, error: &AuthError) -> Failure {
    if let AuthError::Transport(transport) = error
        && transport.kind == TransportErrorKind::Timeout
    {
        let each = settings
            .timeout_secs
            .map_or(HttpSettings::default().timeout, Duration::from_secs);
        let attempts = RetryPolicy::default().max_attempts;
        return Failure::remote(format!(
            "client {client:?}: no token: the token endpoint {} timed out after {} s (attempt {attempts} of {attempts}; timeout_secs sets the wait of each attempt)",
            transport.url,
            each.as_secs_f64()
        ));
    }
    let message = format!("client {client:?}: no token: {error}");
    match error {
        AuthError::Config(_) | AuthError::Credential(_) => Failure::usage(message),
        _ => Failure::remote(message),
    }
}
