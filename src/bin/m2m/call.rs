//! `m2m call`: call any generated operation by its operationId.

use std::path::PathBuf;

use clap::Args;
use m2m::apis::Api;
use m2m::config::Config;

use crate::client::{ClientArgs, resolve};
use crate::failure::Failure;

/// Arguments of `m2m call`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: m2m call cenda getOrganisation --param organisationId=6f1c…\n\
                  Parameters and body fields are named as in the OpenAPI document."
)]
pub struct CallArgs {
    /// List the operations of every API and exit.
    #[arg(long, exclusive = true)]
    list: bool,
    /// A client of the configuration file (use `-` to describe it by flags).
    #[arg(required_unless_present = "list")]
    client: Option<String>,
    /// The operationId to call.
    #[arg(required_unless_present = "list")]
    operation: Option<String>,
    /// A parameter or body field: `name=value` (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// The JSON request body: a file, or `-` for standard input.
    #[arg(long, value_name = "FILE|-")]
    body: Option<PathBuf>,
    #[command(flatten)]
    flags: ClientArgs,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))
}

/// Runs the command.
pub async fn run(config: &Config, args: CallArgs) -> Result<(), Failure> {
    if args.list {
        print_operations();
        return Ok(());
    }
    let (Some(client_name), Some(operation_id)) =
        (args.client.as_deref(), args.operation.as_deref())
    else {
        return Err(Failure::usage(
            "name a client and an operation, or use --list",
        ));
    };
    let api = api_of(operation_id)?;
    let client_name = (client_name != "-").then_some(client_name);
    let client = resolve(config, client_name, &args.flags).await?;
    let base_url = client
        .settings
        .provider()
        .ok()
        .and_then(|provider| provider.api_base_url())
        .ok_or_else(|| {
            Failure::usage(format!(
                "client {:?} has no API base URL: set api_base_url",
                client.name
            ))
        })?;
    // Before any token is fetched: a bearer token goes over TLS only.
    client
        .auth
        .api_settings()
        .check_url(&base_url)
        .map_err(|e| Failure::usage(format!("client {:?}: {e}", client.name)))?;
    let body = match args.body.as_deref() {
        Some(path) if path.as_os_str() == "-" => Some(PathBuf::from("/dev/stdin")),
        other => other.map(PathBuf::from),
    };
    let outcome = api
        .call(
            base_url.as_str().trim_end_matches('/'),
            client.auth.clone(),
            operation_id,
            &args.params,
            body.as_deref(),
        )
        .await
        .map_err(|error| match error {
            m2m::apis::call::CallError::Failed(message) => Failure::remote(format!(
                "{operation_id} for client {:?} failed: {message}",
                client.name
            )),
            other => Failure::usage(other.to_string()),
        })?;
    println!(
        "{}",
        serde_json::to_string_pretty(&outcome.body).expect("JSON values serialise")
    );
    match (outcome.success, outcome.status, &outcome.body) {
        (true, ..) => Ok(()),
        (false, Some(status), _) => Err(Failure::remote(format!(
            "{operation_id} for client {:?} answered {status}",
            client.name
        ))),
        // No answer: the message says why (a timeout, a limit).
        (false, None, serde_json::Value::String(message)) => Err(Failure::remote(format!(
            "{operation_id} for client {:?} failed: {message}",
            client.name
        ))),
        (false, None, _) => Err(Failure::remote(format!(
            "{operation_id} for client {:?} got no response",
            client.name
        ))),
    }
}

/// The API that has `operation_id`.
fn api_of(operation_id: &str) -> Result<Api, Failure> {
    Api::ALL
        .iter()
        .copied()
        .find(|api| {
            api.operations()
                .iter()
                .any(|op| op.operation_id == operation_id)
        })
        .ok_or_else(|| {
            Failure::usage(format!(
                "no API has an operation {operation_id:?}; `m2m call --list` lists them"
            ))
        })
}

fn print_operations() {
    for api in Api::ALL {
        println!("{}:", api.name());
        for operation in api.operations() {
            println!("  {:<28} {}", operation.operation_id, operation.summary);
        }
    }
}
