//! The auth handle's metrics, emitted from here only (feature `metrics`;
//! without it every method is empty and the observer holds nothing):
//! renewals after an API rejected a token, the resends they allow, and the
//! calls stopped because the API kept rejecting fresh tokens. The handles
//! are registered once per handle, at its first renewal.

#[cfg(feature = "metrics")]
use std::sync::OnceLock;

use crate::metrics::MetricLabels;

/// What one auth handle (and its clones) reports.
pub(crate) struct AuthObserver {
    #[cfg(feature = "metrics")]
    labels: MetricLabels,
    #[cfg(feature = "metrics")]
    handles: OnceLock<Handles>,
}

#[cfg(feature = "metrics")]
struct Handles {
    renewals: metrics::Counter,
    resends: metrics::Counter,
    stopped: metrics::Counter,
}

impl AuthObserver {
    pub fn new(labels: &MetricLabels) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = labels;
        Self {
            #[cfg(feature = "metrics")]
            labels: labels.clone(),
            #[cfg(feature = "metrics")]
            handles: OnceLock::new(),
        }
    }

    #[cfg(feature = "metrics")]
    fn handles(&self) -> &Handles {
        use crate::metrics::names;
        self.handles.get_or_init(|| {
            let labels = self.labels.with(&[]);
            Handles {
                renewals: metrics::counter!(names::RENEWALS, labels.clone()),
                resends: metrics::counter!(names::RESENDS, labels.clone()),
                stopped: metrics::counter!(names::RENEWALS_STOPPED, labels.clone()),
            }
        })
    }

    /// The API rejected a token (401 `invalid_token`): it is renewed.
    pub fn renewing(&self) {
        #[cfg(feature = "metrics")]
        self.handles().renewals.increment(1);
    }

    /// A rejected call is sent once more, with the renewed token.
    pub fn resending(&self) {
        #[cfg(feature = "metrics")]
        self.handles().resends.increment(1);
    }

    /// A rejected call is stopped: the API rejected the last renewals' tokens too.
    pub fn stopped(&self) {
        #[cfg(feature = "metrics")]
        self.handles().stopped.increment(1);
    }
}
