//! `m2m call`: call any generated operation by its operationId.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::{ArgAction, Args};
use m2m::apis::exchange::Exchange;
use m2m::config::{ClientConfig, Config, ProviderKind};

use crate::client::{self, ClientArgs, token_failure};
use crate::dispatch::Api;
use crate::failure::Failure;
use crate::invoke::{BodyText, CallFailure, lookup};

/// Arguments of `m2m call`.
#[derive(Debug, Args)]
#[command(
    disable_help_flag = true,
    after_help = "Examples:\n  m2m call --list\n  m2m call cenda getOrganisation --help\n  \
                  m2m call cenda getOrganisation --param organisationId=6f1c…\n  \
                  m2m call nxtsoft postValidationMessage --body transaction.json\n\n\
                  Parameters and body fields are named as in the OpenAPI document. \
                  Exit codes: 0 success, 1 the API or the identity provider said no \
                  or did not answer, 2 the command line or configuration is wrong \
                  (nothing is sent)."
)]
pub struct CallArgs {
    /// Print help; after CLIENT and OPERATION, the operation's parameters,
    /// body fields and an example body.
    #[arg(short = 'h', long, action = ArgAction::SetTrue)]
    help: bool,
    /// List the operations of every API, with their parameters, and exit.
    #[arg(long, exclusive = true)]
    list: bool,
    /// A client of the configuration file (use `-` to describe it by flags).
    #[arg(required_unless_present_any = ["list", "help"])]
    client: Option<String>,
    /// The operationId to call.
    #[arg(required_unless_present_any = ["list", "help"])]
    operation: Option<String>,
    /// A parameter, or a top-level body field when there is no --body:
    /// `name=value`, named as in the document (repeatable).
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

/// Runs the command. `load_config` is only called when the command needs
/// the configuration.
pub async fn run(
    load_config: impl Fn() -> Result<Config, Failure>,
    args: CallArgs,
    call_help: impl FnOnce() -> String,
) -> Result<(), Failure> {
    if args.list {
        print_operations();
        return Ok(());
    }
    if args.help {
        let Some(operation_id) = args.operation.as_deref() else {
            print!("{}", call_help());
            return Ok(());
        };
        // Help needs no working configuration: the client's API narrows
        // the search when it can be told.
        let api = load_config().ok().and_then(|config| {
            let name = args.client.as_deref().filter(|name| *name != "-")?;
            let settings = config.client(name).ok()?.overlaid_with(&args.flags.client);
            api_of(&settings)
        });
        let operation = lookup(api, operation_id).map_err(|e| Failure::usage(e.to_string()))?;
        print!("{}", operation.help());
        return Ok(());
    }
    let (Some(client_name), Some(operation_id)) =
        (args.client.as_deref(), args.operation.as_deref())
    else {
        return Err(Failure::usage(
            "name a client and an operation, or use --list",
        ));
    };
    let config = load_config()?;
    let client_name = (client_name != "-").then_some(client_name);
    // Everything is checked before a token is asked for or a request sent.
    let (name, settings) = client::settings(&config, client_name, &args.flags)?;
    let api = api_of(&settings);
    let operation = lookup(api, operation_id).map_err(|e| {
        Failure::usage(match api {
            Some(_) => format!("client {name:?}: {e}"),
            None => e.to_string(),
        })
    })?;
    let body = args.body.as_deref().map(read_body).transpose()?;
    let call = operation
        .prepare(
            &args.params,
            body.as_ref()
                .map(|(source, text)| BodyText { source, text }),
        )
        .map_err(|e| Failure::usage(e.to_string()))?;
    let client = client::resolve(&config, client_name, &args.flags).await?;
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
    let exchange =
        call.send(base_url.as_str(), &client.auth)
            .await
            .map_err(|error| match error {
                CallFailure::Refused(message) => Failure::usage(message),
                CallFailure::NoToken(error) => {
                    token_failure(&client.name, &client.settings, &error)
                }
                other => Failure::remote(other.to_string()),
            })?;
    report(&exchange)
}

/// Prints the answer's body on stdout as the server sent it (for a
/// failure, only when it is JSON), and fails with `METHOD URL → STATUS:
/// message` when the status is not 2xx.
fn report(exchange: &Exchange) -> Result<(), Failure> {
    if exchange.succeeded() || exchange.body_is_json() {
        let mut stdout = std::io::stdout().lock();
        // JSON cannot carry raw control characters; any other body does
        // not get to send escape sequences to a terminal.
        let body = if stdout.is_terminal() && !exchange.body_is_json() {
            printable(&exchange.body)
        } else {
            exchange.body.clone()
        };
        let _ = stdout.write_all(&body);
        if !exchange.body.is_empty() && !exchange.body.ends_with(b"\n") {
            let _ = stdout.write_all(b"\n");
        }
        let _ = stdout.flush();
    }
    if exchange.succeeded() {
        return Ok(());
    }
    let mut line = exchange.status_line();
    if let Some(message) = exchange.server_message() {
        line.push_str(": ");
        line.push_str(&message);
    }
    Err(Failure::remote(line))
}

/// `body` without control characters other than newline and tab.
fn printable(body: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect::<String>()
        .into_bytes()
}

/// The request body from `path` (`-`: standard input), and how messages
/// name it.
fn read_body(path: &std::path::Path) -> Result<(String, String), Failure> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            Failure::usage(format!("cannot read the body from standard input: {e}"))
        })?;
        return Ok(("standard input".to_owned(), text));
    }
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read the body file {shown}: {e}")))?;
    Ok((shown, text))
}

/// The API a client's provider serves, when the provider has one.
fn api_of(settings: &ClientConfig) -> Option<Api> {
    match settings.provider? {
        ProviderKind::Cenda => Some(Api::cenda_configuration),
        ProviderKind::Nxtsoft => Some(Api::nxtsoft_transactions),
        _ => None,
    }
}

fn print_operations() {
    println!("Operations (* required; body:TYPE takes --body FILE, or --param per field):");
    for api in Api::ALL {
        let operations = api.operations();
        let width = |f: &dyn Fn(&crate::invoke::Operation) -> usize| {
            operations.iter().map(f).max().unwrap_or(0)
        };
        let name = width(&|op| op.operation_id.len());
        let method = width(&|op| op.method.len());
        let takes: Vec<String> = operations.iter().map(|op| op.takes_in_short()).collect();
        let takes_width = takes.iter().map(|t| t.chars().count()).max().unwrap_or(0);
        println!("\n{}:", api.name());
        for (operation, takes) in operations.iter().zip(&takes) {
            println!(
                "  {:<name$}  {:<method$}  {:<takes_width$}  {}",
                operation.operation_id, operation.method, takes, operation.summary
            );
        }
    }
    println!("\n`m2m call CLIENT OPERATION --help` shows an operation's parameters and body.");
}
