//! Renew-once on a rejected token: what the generated clients' hooks and
//! [`AuthMiddleware`](super::AuthMiddleware) both do after a response.
//!
//! An API that rejects every token (a wrong audience, its clock off) would
//! turn every call into a token request. So renewals are counted: after
//! [`MAX_RENEWALS_IN_A_ROW`] renewals whose tokens the API rejected too, with
//! no answer accepting a token in between, a rejected call is not renewed but
//! stopped with [`ApiCallErrorKind::TokensRejected`]; one renewal is tried
//! again [`RENEW_AGAIN_AFTER`] after the last one. The first answer that
//! accepts a token starts the count again. Rejections of calls sent before
//! the last renewal finished do not count: they get the renewed token
//! without a new request.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::header::AUTHORIZATION;
use http::{HeaderValue, StatusCode};
use reqwest::{Request, Response};

use super::challenge;
use super::observer::AuthObserver;
use crate::cache::token_source::TokenSource;
use crate::metrics::MetricLabels;
use crate::oauth::error::{ApiCallError, ApiCallErrorKind, AuthError};
use crate::time::clock::Clock;

/// Renewals in a row, with no answer accepting a token in between, after
/// which m2m stops renewing for a handle: with the first token, at most
/// three token requests for an API that rejects every one.
pub(crate) const MAX_RENEWALS_IN_A_ROW: u32 = 2;

/// Once renewals stopped, the time after the last one when one more is
/// tried (the API or the identity provider may have been fixed meanwhile).
pub(crate) const RENEW_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// The renewals of one [`Auth`](crate::auth::Auth) handle (shared by its
/// clones).
pub(crate) struct Renewals {
    /// Renewals since the API last accepted a token.
    in_a_row: AtomicU32,
    /// Bumped when a renewal finishes: a call sent before it carried an
    /// older token, and its rejection is not a new one.
    generation: AtomicU64,
    /// One renewal at a time, so that concurrent rejections of one token
    /// wait for its renewal instead of counting as more; holds when the
    /// last one was made.
    last: tokio::sync::Mutex<Option<SystemTime>>,
    observer: AuthObserver,
}

/// What a request carried when it was sent (see [`Renewals::sending`]).
pub(crate) struct Sent {
    authorization: Option<HeaderValue>,
    generation: u64,
}

/// What to do after an answer (see [`Renewals::resend_after`]).
pub(crate) enum Resend {
    /// Hand the answer to the caller as it is.
    No,
    /// Send this copy of the request, with a new token, once more.
    Once(Box<Request>),
    /// Stop the call with this error: the API keeps rejecting fresh tokens.
    Stop(AuthError),
}

impl Renewals {
    /// No renewal yet; metrics labelled with `labels`.
    pub(crate) fn new(labels: &MetricLabels) -> Self {
        Self {
            in_a_row: AtomicU32::new(0),
            generation: AtomicU64::new(0),
            last: tokio::sync::Mutex::new(None),
            observer: AuthObserver::new(labels),
        }
    }

    /// Notes what `request` carries as it is sent.
    pub(crate) fn sending(&self, request: &Request) -> Sent {
        Sent {
            authorization: request.headers().get(AUTHORIZATION).cloned(),
            generation: self.generation.load(Ordering::SeqCst),
        }
    }

    /// After `response` to a request that was `sent`: when the API rejected
    /// its token (401 `Bearer error="invalid_token"`), renews it at `source`
    /// (invalidate-if-same) and returns `retry`, a copy of the request, with
    /// the new token, to be sent once more; its answer goes to
    /// [`Renewals::note_answer`]. `clock` times the stop after renewals
    /// in a row. [`Resend::No`]: return `response` as it is —
    /// it did not reject the token, the renewal failed, or there is no copy
    /// (a streamed body; the token is renewed all the same, so the next
    /// request has a good one). [`Resend::Stop`]: the API rejected the
    /// tokens of the last renewals too. `call` names the request in logs.
    pub(crate) async fn resend_after(
        &self,
        source: &dyn TokenSource,
        clock: &dyn Clock,
        response: &Response,
        sent: Sent,
        retry: Option<Request>,
        call: &str,
    ) -> Resend {
        self.note_answer(response);
        if !challenge::rejects_token(response.status(), response.headers()) {
            return Resend::No;
        }
        let Some(rejected) = sent.authorization else {
            return Resend::No;
        };
        let renewals = self;
        let mut last = renewals.last.lock().await;
        let token = if renewals.generation.load(Ordering::SeqCst) != sent.generation {
            drop(last);
            tracing::debug!(call, "token rejected, but renewed since it was sent");
            source.token().await
        } else {
            let in_a_row = renewals.in_a_row.load(Ordering::SeqCst);
            let now = clock.now();
            let again_at = last.and_then(|at| at.checked_add(RENEW_AGAIN_AFTER));
            if in_a_row >= MAX_RENEWALS_IN_A_ROW && again_at.is_none_or(|at| now < at) {
                let error = ApiCallError::stopped(
                    response.url(),
                    ApiCallErrorKind::TokensRejected { renewals: in_a_row },
                );
                tracing::warn!(call, %error, "token rejected again: not renewed");
                self.observer.stopped();
                return Resend::Stop(error);
            }
            renewals.in_a_row.fetch_add(1, Ordering::SeqCst);
            *last = Some(now);
            self.observer.renewing();
            let renewed = source.renew(&rejected).await;
            renewals.generation.fetch_add(1, Ordering::SeqCst);
            renewed
        };
        let token = match token {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(call, %error, "token rejected and renewal failed");
                return Resend::No;
            }
        };
        let Some(mut retry) = retry else {
            tracing::debug!(
                call,
                "token rejected and renewed, but the request body is a stream: not sent again"
            );
            return Resend::No;
        };
        tracing::debug!(call, "token rejected: sending once more with a new token");
        self.observer.resending();
        retry
            .headers_mut()
            .insert(AUTHORIZATION, token.authorization().clone());
        Resend::Once(Box::new(retry))
    }

    /// Notes whether `response` accepted the token it was sent with: any
    /// answer but a 401 or a server error starts the count of renewals in a
    /// row again.
    pub(crate) fn note_answer(&self, response: &Response) {
        let status = response.status();
        let accepted = status != StatusCode::UNAUTHORIZED && !status.is_server_error();
        if accepted && self.in_a_row.load(Ordering::Relaxed) != 0 {
            self.in_a_row.store(0, Ordering::SeqCst);
        }
    }
}
