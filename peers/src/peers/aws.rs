//! aws-smithy-runtime's lazy identity cache (`IdentityCache::lazy()`)
//! around an identity resolver (`ResolveIdentity`) that posts the client
//! credentials grant to the token endpoint and returns the bearer `Token`
//! with its expiry, wired with the runtime components a Smithy client
//! resolves identities with (bearer auth scheme, Tokio sleep, system time).
//! The cache loads when a token is within `buffer_time` of expiry (default
//! 10 s; 1 s for tokens of a few seconds), and every caller then waits.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_async::time::SystemTimeSource;
use aws_smithy_runtime::client::auth::http::BearerAuthScheme;
use aws_smithy_runtime::client::identity::IdentityCache;
use aws_smithy_runtime::client::orchestrator::endpoints::StaticUriEndpointResolver;
use aws_smithy_runtime::client::retries::strategy::NeverRetryStrategy;
use aws_smithy_runtime_api::client::auth::http::HTTP_BEARER_AUTH_SCHEME_ID;
use aws_smithy_runtime_api::client::auth::static_resolver::StaticAuthSchemeOptionResolver;
use aws_smithy_runtime_api::client::identity::http::Token;
use aws_smithy_runtime_api::client::identity::{
    IdentityFuture, ResolveCachedIdentity, ResolveIdentity, SharedIdentityCache,
    SharedIdentityResolver,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use m2m::sandbox::demo::{CENDA_ENTRA_SCOPE, ENTRA_CLIENT_ID, ENTRA_CLIENT_SECRET};

use super::{Kind, Peer};
use crate::env::{Env, Fetches};

/// aws-smithy-runtime's lazy identity cache.
pub struct Aws;

/// The cache, the resolver and the runtime components.
pub struct Client {
    cache: SharedIdentityCache,
    resolver: SharedIdentityResolver,
    components: Arc<RuntimeComponents>,
    config: Arc<ConfigBag>,
}

impl Peer for Client {
    async fn token(&self) -> bool {
        self.cache
            .resolve_cached_identity(self.resolver.clone(), &self.components, &self.config)
            .await
            .is_ok_and(|identity| identity.data::<Token>().is_some())
    }
}

/// Posts the client credentials grant to the token endpoint.
#[derive(Debug)]
struct ClientCredentialsResolver {
    http: reqwest::Client,
    token_url: String,
    fetches: Arc<Fetches>,
}

impl ClientCredentialsResolver {
    async fn fetch(&self) -> Result<Token, Box<dyn std::error::Error + Send + Sync>> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", ENTRA_CLIENT_ID),
            ("client_secret", ENTRA_CLIENT_SECRET),
            ("scope", CENDA_ENTRA_SCOPE),
        ];
        let body = form_body(&form);
        let response = self
            .http
            .post(&self.token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        let json: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
        let token = json["access_token"].as_str().ok_or("no access_token")?;
        let expires_in = json["expires_in"].as_u64().ok_or("no expires_in")?;
        Ok(Token::new(
            token,
            Some(SystemTime::now() + Duration::from_secs(expires_in)),
        ))
    }
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl ResolveIdentity for ClientCredentialsResolver {
    fn resolve_identity<'a>(
        &'a self,
        _components: &'a RuntimeComponents,
        _config: &'a ConfigBag,
    ) -> IdentityFuture<'a> {
        IdentityFuture::new(async move {
            let token = self.fetches.record(self.fetch()).await?;
            Ok(token.into())
        })
    }
}

fn resolver(env: &Env) -> SharedIdentityResolver {
    SharedIdentityResolver::new(ClientCredentialsResolver {
        http: env.http.clone(),
        token_url: env.token_url(),
        fetches: Arc::clone(&env.fetches),
    })
}

fn components(cache: &SharedIdentityCache, resolver: &SharedIdentityResolver) -> RuntimeComponents {
    RuntimeComponentsBuilder::new("m2m-peers")
        .with_auth_scheme_option_resolver(Some(StaticAuthSchemeOptionResolver::new(vec![
            HTTP_BEARER_AUTH_SCHEME_ID,
        ])))
        .with_auth_scheme(BearerAuthScheme::new())
        .with_identity_resolver(HTTP_BEARER_AUTH_SCHEME_ID, resolver.clone())
        .with_identity_cache(Some(cache.clone()))
        .with_endpoint_resolver(Some(StaticUriEndpointResolver::uri("http://127.0.0.1")))
        .with_retry_strategy(Some(NeverRetryStrategy::new()))
        .with_sleep_impl(Some(TokioSleep::new()))
        .with_time_source(Some(SystemTimeSource::new()))
        .build()
        .expect("every required runtime component is set")
}

impl Kind for Aws {
    const NAME: &'static str = "aws-smithy-runtime 1.16.2, lazy cache";
    type Client = Client;
    const REFRESH: &'static str =
        "no background refresh: loads within buffer_time of expiry, every caller waits";

    fn client(env: &Env, short: bool) -> Client {
        let mut builder = IdentityCache::lazy();
        if short {
            builder = builder.buffer_time(Duration::from_secs(1));
        }
        let cache = builder.build();
        let resolver = resolver(env);
        let components = Arc::new(components(&cache, &resolver));
        Client {
            cache,
            resolver,
            components,
            config: Arc::new(ConfigBag::base()),
        }
    }

    fn clients(env: &Env, n: usize) -> Vec<Client> {
        // One cache, one partition per resolver (the default keeps 64).
        let cache = IdentityCache::lazy().max_partitions(n.max(1)).build();
        let first = resolver(env);
        let components = Arc::new(components(&cache, &first));
        let config = Arc::new(ConfigBag::base());
        (0..n)
            .map(|_| Client {
                cache: cache.clone(),
                resolver: resolver(env),
                components: Arc::clone(&components),
                config: Arc::clone(&config),
            })
            .collect()
    }
}
