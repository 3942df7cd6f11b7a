//! Errors of the token layer.

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token endpoint answered with a token that cannot be used.
    #[error(transparent)]
    InvalidToken(#[from] super::InvalidTokenValue),
}
