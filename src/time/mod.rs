//! Time and randomness, injected: the [`Clock`] every wait and expiry reads,
//! the [`Jitter`] of every backoff, and their test doubles.

pub(crate) mod clock;
#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
pub(crate) mod test_doubles;

pub use clock::{Clock, Jitter, RandomJitter, SystemClock};
#[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
pub use test_doubles::{FixedJitter, ManualClock};
