//! The token endpoint: one provider's token requests for one client, with
//! retries, hold-off after a throttle and OpenID Connect discovery. No
//! caching: that is the cache's job, above.

pub(crate) mod discovery;
pub(crate) mod fetch_token;
pub(crate) mod retry;
pub(crate) mod token_endpoint;
pub(crate) mod workload_identity;
