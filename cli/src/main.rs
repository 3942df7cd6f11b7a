//! `m2m`: machine-to-machine API access from the command line.
//!
//! Exit codes: 0 success, 1 remote or authentication failure, 2 usage or
//! configuration error.

mod call;
mod client;
mod config_check;
mod demo;
mod dispatch;
mod failure;
mod invoke;
mod providers;
mod sandbox;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::IsTerminal;

use clap::{CommandFactory, Parser, Subcommand};
use m2m::config::{CONFIG_ENV, Config};

use crate::failure::Failure;

/// Machine-to-machine API access: cached OAuth 2.0 client-credentials tokens
/// and typed calls to the APIs generated from `openapi/`.
#[derive(Debug, Parser)]
#[command(name = "m2m", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// The configuration file (default: ./m2m.toml when it exists).
    #[arg(long, global = true, env = CONFIG_ENV, value_name = "PATH")]
    config: Option<PathBuf>,
    /// More output on stderr: -v for m2m's own events, -vv for everything.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the built-in provider variants and what each needs.
    Providers,
    /// Fetch a token and print a summary (the token only with --show-token).
    Token(token::TokenArgs),
    /// Call any generated API operation by its operationId.
    Call(call::CallArgs),
    /// Run the embedded sandbox (identity providers and APIs) until Ctrl-C.
    Sandbox(sandbox::SandboxArgs),
    /// Run the whole flow against the embedded sandbox: no credentials needed.
    Demo(demo::DemoArgs),
    /// Print the JSON Schema of m2m.toml.
    Schema,
    /// Check a configuration file: every client resolvable, secrets present.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `m2m config …`.
#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration (--config PATH, M2M_CONFIG or ./m2m.toml):
    /// exit 0 when every client can be used, 2 otherwise.
    Check,
}

fn main() -> ExitCode {
    exit_quietly_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    init_tracing(cli.verbose);
    if matches!(cli.command, Command::Demo(_)) {
        for (name, value) in demo::SECRET_VARIABLES {
            // SAFETY: no other thread exists yet (the runtime starts below),
            // so nothing can read the environment concurrently.
            unsafe { std::env::set_var(name, value) };
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return Failure::remote(format!("cannot start the runtime: {error}")).report();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// `m2m demo | head` must end quietly when `head` has read enough, as
/// command-line tools do, instead of panicking on the write: restore the
/// default SIGPIPE action that the Rust runtime sets to "ignore".
fn exit_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists;
    // it only changes this process's action for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// clap's own errors, on one line like every other (`m2m: error: …`, exit
/// 2); help and version as clap prints them.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let rendered = error.render().to_string();
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:"))
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect();
    let line = parts.join("; ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    Failure::usage(format!("{line}; see --help")).report()
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let config_path = cli.config.clone();
    let load_config = move || match &config_path {
        Some(path) => Config::load(path).map_err(Failure::from),
        None => Config::load_default().map_err(Failure::from),
    };
    match cli.command {
        Command::Providers => {
            providers::print();
            Ok(())
        }
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&Config::json_schema())
                .expect("a JSON value serialises");
            println!("{schema}");
            Ok(())
        }
        Command::Token(args) => token::run(&load_config()?, args).await,
        Command::Call(args) => {
            let help = || {
                let mut command = Cli::command();
                command.build();
                command
                    .find_subcommand_mut("call")
                    .map(|call| call.render_help().to_string())
                    .unwrap_or_default()
            };
            call::run(load_config, args, help).await
        }
        Command::Config(ConfigCommand::Check) => config_check::run(cli.config.as_deref()).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "m2m", &mut std::io::stdout());
            Ok(())
        }
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Demo(args) => demo::run(args).await,
    }
}

/// Tracing to stderr: off by default (errors are reported by `Failure`),
/// `-v` shows m2m's events (each API request's method, URL and status
/// among them), `-vv` everything down to TRACE. Secrets never reach an
/// event, so this is safe to turn on in production. Colour only when
/// stderr is a terminal and `NO_COLOR` is not set.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = match verbose {
        0 => return,
        1 => Targets::new().with_target("m2m", LevelFilter::DEBUG),
        _ => Targets::new().with_default(LevelFilter::TRACE),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(use_colour()),
        )
        .with(filter)
        .init();
}

/// Colour on stderr: only to a terminal, and never with `NO_COLOR` set to
/// anything but the empty string (no-color.org).
pub fn use_colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stderr().is_terminal()
}
