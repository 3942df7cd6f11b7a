//! What the examples share: where the settings come from.
//!
//! Each example runs against a real provider when its settings are in the
//! environment (the example's header lists them), and otherwise against the
//! embedded sandbox, with the sandbox's public demo credentials.

use m2m::auth::AccessToken;
use m2m::sandbox::Sandbox;

/// The environment variable `name`, or `None` when it is unset or empty.
pub fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The environment variable `name`, which the real provider needs.
pub fn required(name: &str) -> Result<String, String> {
    setting(name).ok_or_else(|| format!("{name} is not set (see the example's header)"))
}

/// Starts the embedded sandbox and says so.
pub async fn start_sandbox(real_settings: &str) -> Result<Sandbox, Box<dyn std::error::Error>> {
    let sandbox = Sandbox::start().await?;
    println!(
        "{real_settings} is not set: using the embedded sandbox at {}",
        sandbox.base_url()
    );
    Ok(sandbox)
}

/// Says what the sandbox, if one was used, saw, and stops it.
pub async fn stop_sandbox(sandbox: Option<Sandbox>) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(sandbox) = sandbox {
        let stats = sandbox.stats();
        println!(
            "the sandbox saw {} token request(s), {} discovery fetch(es) and {} API call(s)",
            stats.token_requests(),
            stats.discovery_requests,
            stats.api_requests()
        );
        sandbox.shutdown().await?;
    }
    Ok(())
}

/// Whole seconds until `token` expires.
#[allow(dead_code)] // not every example prints it
pub fn expires_in(token: &AccessToken) -> u64 {
    token
        .expires_at()
        .duration_since(std::time::SystemTime::now())
        .map_or(0, |left| left.as_secs())
}
