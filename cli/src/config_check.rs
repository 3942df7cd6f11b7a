//! `m2m config check`: can every client of a configuration be used?

use std::path::Path;

use m2m::config::{CONFIG_ENV, ClientConfig, Config, DEFAULT_CONFIG_FILE};

use crate::failure::Failure;

/// Checks the configuration at `path` (`--config` or `M2M_CONFIG`), else
/// `./m2m.toml`: prints one line per client on stdout, and fails (exit 2)
/// when the file is missing or invalid or a client cannot be used. Never
/// prints a secret: only where each one comes from.
pub async fn run(path: Option<&Path>) -> Result<(), Failure> {
    let path = match path {
        Some(path) => path.to_owned(),
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => DEFAULT_CONFIG_FILE.into(),
        None => {
            return Err(Failure::usage(format!(
                "no configuration file found: ./{DEFAULT_CONFIG_FILE} does not exist, and neither --config nor {CONFIG_ENV} names one"
            )));
        }
    };
    let config = Config::load(&path)?;
    let shown = path.display();
    println!("{shown}: {} clients", config.clients.len());
    let mut problems = Vec::new();
    if let Err(problem) = check_cache(&config) {
        println!("  FAILED  [cache]  {problem}");
        problems.push("[cache]".to_owned());
    }
    let width = config.clients.keys().map(String::len).max().unwrap_or(0);
    for (name, client) in &config.clients {
        match check_client(&config, name, client) {
            Ok(summary) => println!("  ok      {name:<width$}  {summary}"),
            Err(problem) => {
                println!("  FAILED  {name:<width$}  {problem}");
                problems.push(name.clone());
            }
        }
    }
    if config.clients.is_empty() {
        println!(
            "  (it declares no clients: add [clients.NAME] sections; `m2m providers` shows what each provider needs)"
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{shown}: {} cannot be used: {}",
            if problems.len() == 1 {
                "one entry"
            } else {
                "some entries"
            },
            problems.join(", ")
        )))
    }
}

fn check_cache(config: &Config) -> Result<(), String> {
    if config.cache.redis_url.is_some() && config.cache.dir.is_some() {
        return Err("set redis_url or dir, not both".to_owned());
    }
    m2m::auth::CacheEncryptionKey::from_env()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// One line about a usable client: provider, token endpoint, where the
/// credential comes from, API base URL.
fn check_client(config: &Config, name: &str, client: &ClientConfig) -> Result<String, String> {
    let endpoint = config
        .token_endpoint(name)
        .and_then(|builder| {
            builder
                .build()
                .map_err(|e| m2m::config::ConfigFileError::Client {
                    client: name.to_owned(),
                    message: e.to_string(),
                })
        })
        .map_err(|e| {
            let text = e.to_string();
            text.strip_prefix(&format!("client {name:?}: "))
                .unwrap_or(&text)
                .to_owned()
        })?;
    let identity = endpoint.identity();
    let override_var = ClientConfig::secret_override_env(name);
    let credential = if client.auth == Some(m2m::config::AuthMethodName::ClientAssertion)
        || (client.auth.is_none() && client.client_assertion_file.is_some())
    {
        match &client.client_assertion_file {
            Some(file) => format!("client assertion from {}", file.display()),
            None => "client assertion from $AZURE_FEDERATED_TOKEN_FILE".to_owned(),
        }
    } else if std::env::var_os(&override_var).is_some() {
        format!("secret from ${override_var}")
    } else if let Some(var) = &client.client_secret_env {
        format!("secret from ${var}")
    } else if let Some(file) = &client.client_secret_file {
        format!("secret from {}", file.display())
    } else if let Some(file) = &client.private_key_file {
        format!("private key {}", file.display())
    } else {
        "credential".to_owned()
    };
    let credential = match &client.secondary_client_secret_env {
        Some(var) => format!("{credential}, second secret from ${var}"),
        None => credential,
    };
    let api = client
        .provider()
        .ok()
        .and_then(|provider| provider.api_base_url())
        .map_or_else(|| "no api_base_url".to_owned(), |url| format!("API {url}"));
    Ok(format!(
        "{}, token {}, {credential}, {api}",
        identity.provider, identity.authority
    ))
}
