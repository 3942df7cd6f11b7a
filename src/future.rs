//! The boxed future the traits of the token layer return.

/// A boxed, sendable future, as [`TokenSource`](crate::auth::TokenSource)
/// returns.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
