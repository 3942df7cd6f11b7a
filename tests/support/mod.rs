//! Helpers shared by the integration tests: the built-in clients pointed at
//! a recording server. The token source, the recording server and the check
//! that a text holds no secret are `m2m::test_util`'s.
//!
//! Each test crate uses a subset of these helpers.
#![allow(dead_code)]

use m2m::apis::{cenda_configuration, nxtsoft_transactions};
use m2m::test_util::{RecordingServer, TestTokens};

/// A Cenda Configuration client that sends to `server` with `tokens`.
pub fn cenda_client(server: &RecordingServer, tokens: &TestTokens) -> cenda_configuration::Client {
    cenda_configuration::Client::new_with_client(
        &server.uri(),
        reqwest::Client::new(),
        tokens.auth(),
    )
}

/// A NXTsoft transactions client that sends to `server` with `tokens`.
pub fn nxtsoft_client(
    server: &RecordingServer,
    tokens: &TestTokens,
) -> nxtsoft_transactions::Client {
    nxtsoft_transactions::Client::new_with_client(
        &server.uri(),
        reqwest::Client::new(),
        tokens.auth(),
    )
}
