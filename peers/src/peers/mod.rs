//! The token managers side by side, each wired as its documentation shows,
//! each against the sandbox's Entra-style token endpoint with the Entra demo
//! client (secret in the form body, scope `{gateway}/.default`).

pub mod aws;
pub mod azure;
pub mod huskarl;
pub mod m2m;
pub mod oauth2_rs;

use std::time::Duration;

use crate::env::Env;

/// One client of a token manager: hands out a token per call.
pub trait Peer: Send + Sync + 'static {
    /// A token valid now; `true` when one came.
    fn token(&self) -> impl Future<Output = bool> + Send;
}

/// A token manager: how to make its clients.
pub trait Kind {
    /// The column heading: crate and version.
    const NAME: &'static str;
    /// `false`: no token cache, every call is a token request.
    const CACHES: bool = true;
    /// The client a service would keep.
    type Client: Peer;
    /// A new client with a cold cache. `short`: tuned for tokens that live
    /// a few seconds, where the peer has a knob for it and needs it.
    fn client(env: &Env, short: bool) -> Self::Client;
    /// `n` clients, each of which will hold a token of its own (distinct
    /// cache keys or distinct clients, whichever the peer's design keys by).
    fn clients(env: &Env, n: usize) -> Vec<Self::Client> {
        (0..n).map(|_| Self::client(env, false)).collect()
    }
    /// How its refresh works, for the steady-load row's note.
    const REFRESH: &'static str;
    /// A refresh margin the peer has and cannot be told otherwise: its
    /// steady-load tokens live this much longer, so that it uses each for
    /// as long as the others do.
    const FIXED_REFRESH_MARGIN: Duration = Duration::ZERO;
}
