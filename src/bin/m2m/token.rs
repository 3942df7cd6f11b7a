//! `m2m token`: fetch a token and print a summary.

use std::time::SystemTime;

use clap::{Args, ValueEnum};
use m2m::config::Config;
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::client::{ClientArgs, resolve, token_failure};
use crate::failure::Failure;

/// Arguments of `m2m token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// A client of the configuration file (optional when flags describe one).
    client: Option<String>,
    #[command(flatten)]
    flags: ClientArgs,
    /// Print the access token itself (it is a secret: think twice).
    #[arg(long)]
    show_token: bool,
    /// Output format: a JSON summary, shell `export` lines, or an HTTP header.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

/// How `m2m token` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `{client, provider, token_type, expires_in, scopes, cached}`.
    Json,
    /// `export M2M_ACCESS_TOKEN=…` lines (needs --show-token).
    Env,
    /// `Authorization: Bearer …` (needs --show-token).
    Header,
}

/// The JSON summary. The token appears only with `--show-token`.
#[derive(Debug, Serialize)]
struct Summary {
    client: String,
    provider: String,
    token_type: String,
    expires_in: u64,
    scopes: Vec<String>,
    cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
}

/// Fetches the token and prints it as asked.
pub async fn run(config: &Config, args: TokenArgs) -> Result<(), Failure> {
    if args.format != Format::Json && !args.show_token {
        return Err(Failure::usage(
            "--format env and --format header print the token: add --show-token",
        ));
    }
    let client = resolve(config, args.client.as_deref(), &args.flags).await?;
    let fetches_before = client.source.stats().fetches;
    let token = client
        .auth
        .token()
        .await
        .map_err(|e| token_failure(&client.name, &e))?;
    let cached = client.source.stats().fetches == fetches_before;
    let expires_in = token
        .expires_at()
        .duration_since(SystemTime::now())
        .map_or(0, |left| left.as_secs());
    let secret = args
        .show_token
        .then(|| token.secret().expose_secret().to_owned());
    match args.format {
        Format::Json => {
            let provider = client
                .settings
                .provider()
                .map_or_else(|_| "?".to_owned(), |p| p.to_string());
            let summary = Summary {
                client: client.name,
                provider,
                token_type: token.token_type().to_owned(),
                expires_in,
                scopes: token
                    .scopes()
                    .map(<[String]>::to_vec)
                    .unwrap_or_else(|| client.source.key().scopes().to_vec()),
                cached,
                access_token: secret,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).expect("a summary serialises")
            );
        }
        Format::Env => {
            println!("export M2M_ACCESS_TOKEN='{}'", secret.unwrap_or_default());
            println!("export M2M_TOKEN_TYPE='{}'", token.token_type());
            println!("export M2M_TOKEN_EXPIRES_IN={expires_in}");
        }
        Format::Header => {
            println!(
                "Authorization: {} {}",
                token.token_type(),
                secret.unwrap_or_default()
            );
        }
    }
    Ok(())
}
