//! The last few failures of the generated clients' calls, so that a call's
//! string error can be turned back into the typed [`AuthError`].

use crate::oauth::error::AuthError;

/// The last few token failures of the generated clients' calls (one
/// process-wide list), so that a call's string error can be turned back
/// into the typed [`AuthError`] without the client: [`crate::auth_error`].
///
/// A failure equal to one already kept (the same error handed to every
/// caller of one failed fetch) reuses that entry and makes it the most
/// recent, so a burst of calls failing together takes one entry, not one
/// per call: none of those callers loses its error to the others.
#[derive(Debug, Default)]
pub struct RecentFailures {
    next: std::sync::atomic::AtomicU64,
    kept: std::sync::Mutex<std::collections::VecDeque<KeptFailure>>,
}

/// One entry of [`RecentFailures`].
#[derive(Debug)]
struct KeptFailure {
    id: u64,
    /// See [`RecentFailures::fingerprint`]. (Errors never hold a secret;
    /// this text is only compared, never shown.)
    fingerprint: String,
    error: AuthError,
}

impl RecentFailures {
    /// How many distinct failures are kept.
    pub const CAPACITY: usize = 256;

    /// The process-wide list the generated clients' hooks record into.
    pub(crate) fn global() -> &'static RecentFailures {
        static GLOBAL: std::sync::LazyLock<RecentFailures> =
            std::sync::LazyLock::new(RecentFailures::default);
        &GLOBAL
    }
    const TAG: &'static str = "[m2m-auth-failure ";

    pub(crate) fn record(&self, error: &AuthError) -> String {
        let fingerprint = Self::fingerprint(error);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let seen = kept.iter().rposition(|k| k.fingerprint == fingerprint);
        let entry = match seen.and_then(|index| kept.remove(index)) {
            // The same failure seen again: its newest form (a hold-off's
            // time left shrinks from call to call) answers every caller.
            Some(entry) => KeptFailure {
                error: error.clone(),
                ..entry
            },
            None => KeptFailure {
                id: self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                fingerprint,
                error: error.clone(),
            },
        };
        let id = entry.id;
        if kept.len() == Self::CAPACITY {
            kept.pop_front();
        }
        kept.push_back(entry);
        format!("{}{id}]", Self::TAG)
    }

    /// What makes two failures the same one: their `Debug` text, except
    /// that every hold-off is one failure whatever time it has left (each
    /// caller held off after a 429 is told a slightly shorter wait).
    fn fingerprint(error: &AuthError) -> String {
        match error {
            AuthError::HeldOff { .. } => "HeldOff".to_owned(),
            other => format!("{other:?}"),
        }
    }

    pub(crate) fn find(&self, message: &str) -> Option<AuthError> {
        let start = message.find(Self::TAG)? + Self::TAG.len();
        let id: u64 = message[start..].split(']').next()?.parse().ok()?;
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().find(|k| k.id == id).map(|k| k.error.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::ConfigError;

    fn distinct(number: u64) -> AuthError {
        AuthError::Config(ConfigError::Invalid(format!("failure {number}")))
    }

    fn message_of(error: Option<AuthError>) -> Option<String> {
        error.map(|error| error.to_string())
    }

    #[test]
    fn equal_failures_share_one_entry_and_stay_findable() {
        let failures = RecentFailures::default();
        let first = failures.record(&distinct(1));
        // Many calls failing with the same error take one entry.
        for _ in 0..10 * RecentFailures::CAPACITY {
            assert_eq!(failures.record(&distinct(1)), first);
        }
        // Distinct failures fill the rest: every one is still there.
        let others: Vec<String> = (2..=RecentFailures::CAPACITY as u64)
            .map(|number| failures.record(&distinct(number)))
            .collect();
        assert_eq!(
            message_of(failures.find(&first)),
            Some(distinct(1).to_string())
        );
        assert!(others.iter().all(|other| failures.find(other).is_some()));
        // Seen again, the first failure becomes the most recent; the next
        // new one pushes out the least recent (number 2), not the first.
        assert_eq!(failures.record(&distinct(1)), first);
        failures.record(&distinct(1000));
        assert!(failures.find(&first).is_some());
        assert!(failures.find(&others[0]).is_none());
        assert!(failures.find(&others[1]).is_some());
        assert!(failures.find("no reference").is_none());
    }

    #[test]
    fn every_caller_held_off_finds_its_error_however_many_there_are() {
        let failures = RecentFailures::default();
        // Callers held off after a 429 each get the time left, to the
        // nanosecond: many more of them than the capacity.
        let references: Vec<String> = (0..10 * RecentFailures::CAPACITY as u64)
            .map(|n| {
                failures.record(&AuthError::HeldOff {
                    retry_after: std::time::Duration::from_nanos(60_000_000_000 - n),
                })
            })
            .collect();
        let other = failures.record(&AuthError::Config(ConfigError::Invalid(
            "a distinct failure".into(),
        )));

        for reference in &references {
            let found = failures
                .find(reference)
                .expect("every held-off caller's error");
            // The newest form: the shortest wait.
            assert_eq!(
                found.retry_after(),
                Some(std::time::Duration::from_nanos(
                    60_000_000_000 - (10 * RecentFailures::CAPACITY as u64 - 1)
                ))
            );
        }
        assert!(failures.find(&other).is_some());
    }
}
