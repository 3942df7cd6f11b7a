//! `m2m sandbox`: the embedded sandbox, until Ctrl-C.

use clap::Args;
use m2m::sandbox::Sandbox;

use crate::failure::Failure;

/// Arguments of `m2m sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The loopback port to listen on (default: a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// Runs the sandbox until Ctrl-C.
pub async fn run(args: SandboxArgs) -> Result<(), Failure> {
    let sandbox = Sandbox::builder()
        .port(args.port)
        .start()
        .await
        .map_err(|e| Failure::usage(format!("cannot start the sandbox: {e}")))?;
    println!("{sandbox}");
    println!("Sandbox running; press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Failure::remote(format!("cannot wait for Ctrl-C: {e}")))?;
    sandbox
        .shutdown()
        .await
        .map_err(|e| Failure::remote(format!("the sandbox did not stop cleanly: {e}")))
}
