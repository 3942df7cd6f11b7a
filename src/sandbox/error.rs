//! Why the sandbox could not start or stop cleanly.

/// Why the sandbox could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The port could not be bound on 127.0.0.1.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for (0: any free port).
        port: u16,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The signing key could not be generated.
    #[error("sandbox signing key: {0}")]
    Key(String),
    /// An OpenAPI document could not be turned into routes.
    #[error("sandbox routes for {api}: {problem}")]
    Spec {
        /// The API (`cenda-configuration`, `nxtsoft-transactions`).
        api: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The server stopped with an I/O error.
    #[error("sandbox server: {0}")]
    Server(std::io::Error),
    /// The server task panicked or was cancelled.
    #[error("the sandbox server task did not finish cleanly")]
    Task,
}
