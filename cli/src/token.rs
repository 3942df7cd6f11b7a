//! `m2m token`: fetch a token and print a summary, its claims, or the
//! token itself for a shell or a header.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use clap::{Args, ValueEnum};
use m2m::config::Config;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::{ClientArgs, resolve, token_failure};
use crate::failure::Failure;

/// The variable `--format env` exports the token in, unless `--env-var`.
const DEFAULT_ENV_VAR: &str = "M2M_ACCESS_TOKEN";

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
    /// Output format: a JSON summary, shell `export` lines, an HTTP header,
    /// or the JWT's header and claims as JSON.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// The variable `--format env` exports the token in.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_ENV_VAR)]
    env_var: String,
    /// Show the JWT's header and claims (issuer, audience, expiry, scopes,
    /// client, tenant), never its signature or the token itself.
    #[arg(long, conflicts_with_all = ["format", "show_token"])]
    decode: bool,
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
    /// `{header, claims}` of a JWT, as JSON (no signature, no token).
    Claims,
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
    if matches!(args.format, Format::Env | Format::Header) && !args.show_token {
        return Err(Failure::usage(format!(
            "--format {} prints the token: add --show-token",
            if args.format == Format::Env {
                "env"
            } else {
                "header"
            }
        )));
    }
    if args.env_var != DEFAULT_ENV_VAR && args.format != Format::Env {
        return Err(Failure::usage("--env-var goes with --format env"));
    }
    if !is_shell_name(&args.env_var) {
        return Err(Failure::usage(format!(
            "--env-var {:?} is not a shell variable name (letters, digits and _, not starting with a digit)",
            args.env_var
        )));
    }
    let client = resolve(config, args.client.as_deref(), &args.flags).await?;
    let fetches_before = client.source.stats().fetches;
    let token = client
        .auth
        .token()
        .await
        .map_err(|e| token_failure(&client.name, &client.settings, &e))?;
    let cached = client.source.stats().fetches == fetches_before;
    let expires_in = token
        .expires_at()
        .duration_since(SystemTime::now())
        .map_or(0, |left| left.as_secs());
    let value = token.secret().expose_secret();
    if args.decode {
        print_decoded(value);
        return Ok(());
    }
    let secret = args.show_token.then(|| value.to_owned());
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
            println!(
                "export {}={}",
                args.env_var,
                shell_quote(&secret.unwrap_or_default())
            );
            println!("export M2M_TOKEN_TYPE={}", shell_quote(token.token_type()));
            println!("export M2M_TOKEN_EXPIRES_IN={expires_in}");
        }
        Format::Header => {
            println!(
                "Authorization: {} {}",
                token.token_type(),
                secret.unwrap_or_default()
            );
        }
        Format::Claims => {
            let decoded = match Jwt::parse(value) {
                Some(jwt) => serde_json::json!({ "header": jwt.header, "claims": jwt.claims }),
                None => serde_json::json!({ "jwt": false }),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&decoded).expect("JSON values serialise")
            );
            if decoded.get("jwt").is_some() {
                eprintln!("m2m: the access token is not a JWT: it has no claims to show");
            }
        }
    }
    Ok(())
}

/// A JWT's header and claims; the signature is dropped unread.
struct Jwt {
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl Jwt {
    /// `None` when `token` is not three base64url parts whose first two
    /// are JSON objects (an opaque token).
    fn parse(token: &str) -> Option<Jwt> {
        let mut parts = token.split('.');
        let (header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let object = |part: &str| -> Option<Map<String, Value>> {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .ok()?;
            match serde_json::from_slice(&bytes).ok()? {
                Value::Object(map) => Some(map),
                _ => None,
            }
        };
        Some(Jwt {
            header: object(header)?,
            claims: object(claims)?,
        })
    }
}

/// The `--decode` view: the header, the claims a user looks for first,
/// then every claim.
fn print_decoded(token: &str) {
    let Some(jwt) = Jwt::parse(token) else {
        println!(
            "The access token is not a JWT (an opaque token of {} characters): it has no header or claims to decode.",
            token.chars().count()
        );
        return;
    };
    let compact = |value: &Value| {
        value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned)
    };
    println!("header   {}", Value::Object(jwt.header.clone()));
    for name in ["iss", "sub", "aud"] {
        if let Some(value) = jwt.claims.get(name) {
            println!("{name:<8} {}", compact(value));
        }
    }
    for name in ["iat", "nbf", "exp"] {
        if let Some(seconds) = jwt.claims.get(name).and_then(Value::as_i64) {
            println!("{name:<8} {}", time_and_distance(seconds, name == "exp"));
        }
    }
    for name in ["scp", "roles", "scope", "azp", "appid", "client_id", "tid"] {
        if let Some(value) = jwt.claims.get(name) {
            let shown = match value {
                Value::Array(items) => items.iter().map(compact).collect::<Vec<_>>().join(" "),
                other => compact(other),
            };
            println!("{name:<8} {shown}");
        }
    }
    println!(
        "claims   {}",
        serde_json::to_string_pretty(&Value::Object(jwt.claims))
            .unwrap_or_default()
            .replace('\n', "\n         ")
    );
}

/// `2026-01-01T12:00:00Z (expires in 59 min 58 s)` for a Unix time.
fn time_and_distance(seconds: i64, is_expiry: bool) -> String {
    let Some(at) = chrono::DateTime::from_timestamp(seconds, 0) else {
        return seconds.to_string();
    };
    let now = chrono::Utc::now().timestamp();
    let distance = human(Duration::from_secs(seconds.abs_diff(now)));
    let relative = match (is_expiry, seconds >= now) {
        (true, true) => format!("expires in {distance}"),
        (true, false) => format!("expired {distance} ago"),
        (false, true) => format!("in {distance}"),
        (false, false) => format!("{distance} ago"),
    };
    format!("{} ({relative})", at.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// `1 h 2 min`, `59 min 58 s`, `12 s`.
fn human(duration: Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds} s"),
        (0, _) => format!("{minutes} min {seconds} s"),
        _ => format!("{hours} h {minutes} min"),
    }
}

fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `'value'`, with any `'` inside closed, escaped and reopened.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
