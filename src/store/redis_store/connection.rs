//! The connection a [`RedisStore`](super::RedisStore) talks through: one
//! Redis server (or the primary endpoint of a managed, replicated one), or
//! a Redis Cluster. Both reconnect by themselves; the cluster one also
//! follows `MOVED`/`ASK` redirections and refreshes its slot map.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, TlsCertificates, Value};

use super::config::RedisStoreConfig;
use crate::store::token_store::StoreError;

/// The longest wait between two reconnection attempts.
const MAX_RECONNECT_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// A cheap-to-clone, multiplexed connection to a server or a cluster.
#[derive(Clone)]
pub(super) enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Sets up the connection without waiting for Redis: it is made on
    /// first use. Fails only for invalid settings.
    pub fn open_lazy(config: &RedisStoreConfig) -> Result<Self, StoreError> {
        let timeout = config.operation_timeout();
        let tls = config.tls_root().map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        });
        if !config.is_cluster() {
            let client = match tls {
                None => Client::open(config.url().as_str()),
                Some(certificates) => Client::build_with_tls(config.url().as_str(), certificates),
            }
            .map_err(invalid)?;
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_max_delay(MAX_RECONNECT_DELAY);
            let redis = ConnectionManager::new_lazy_with_config(client, manager).map_err(|e| {
                StoreError::with_source(format!("Redis client setup failed: {e}"), e)
            })?;
            return Ok(Self::Server(redis));
        }
        let seeds: Vec<&str> = config.seed_urls().map(url::Url::as_str).collect();
        let mut builder = ClusterClientBuilder::new(seeds)
            .connection_timeout(timeout)
            .response_timeout(timeout);
        if let Some(certificates) = tls {
            builder = builder.certs(certificates);
        }
        let client = builder.build().map_err(invalid)?;
        let cluster = ClusterConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        Ok(Self::Cluster(
            client.get_pending_async_connection_with_config(cluster),
        ))
    }
}

fn invalid(error: RedisError) -> StoreError {
    // The redis crate's message names the problem, not the URL.
    StoreError::with_source(format!("invalid Redis settings: {error}"), error)
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(redis) => redis.req_packed_command(cmd),
            Self::Cluster(redis) => redis.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(redis) => redis.req_packed_commands(pipeline, offset, count),
            Self::Cluster(redis) => redis.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(redis) => redis.get_db(),
            Self::Cluster(redis) => redis.get_db(),
        }
    }
}
