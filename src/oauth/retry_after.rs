//! The `Retry-After` of an answer, read once for every caller and capped.

use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue};

/// The longest wait a `Retry-After` can impose, wherever m2m reads one (a
/// token endpoint, a discovery document, an API answer): longer values are
/// cut to it. A server asking for an hour (or for 2^64 seconds) gets two
/// minutes; a [`RetryPolicy`](crate::auth::RetryPolicy) may lower it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// The `Retry-After` of an answer (RFC 9110 §10.2.3: delay-seconds or an
/// HTTP date, a date in the past meaning zero) as a wait from `now`, at most
/// [`MAX_RETRY_AFTER`]; `None` when absent or unreadable. The helper for
/// any answer m2m or its user reads:
///
/// ```
/// # use std::time::{Duration, SystemTime};
/// # use m2m::auth::{retry_after, MAX_RETRY_AFTER};
/// let mut headers = http::HeaderMap::new();
/// headers.insert(http::header::RETRY_AFTER, "3600".parse().unwrap());
/// assert_eq!(retry_after(&headers, SystemTime::now()), Some(MAX_RETRY_AFTER));
/// headers.insert(http::header::RETRY_AFTER, "30".parse().unwrap());
/// assert_eq!(retry_after(&headers, SystemTime::now()), Some(Duration::from_secs(30)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?, now)
}

fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let date = httpdate::parse_http_date(text).ok()?;
            date.duration_since(now).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let parse = |v: &str| parse_retry_after(&HeaderValue::from_str(v).unwrap(), now);
        assert_eq!(parse("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse(" 5 "), Some(Duration::from_secs(5)));
        let in_90_s = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse(&in_90_s), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse(&past), Some(Duration::ZERO));
        assert_eq!(parse("soon"), None);
        assert_eq!(parse("-3"), None);
    }

    #[test]
    fn every_retry_after_is_capped() {
        assert_eq!(MAX_RETRY_AFTER, Duration::from_secs(120));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let parse = |v: &str| parse_retry_after(&HeaderValue::from_str(v).unwrap(), now);
        assert_eq!(parse("120"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("3600"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse(&u64::MAX.to_string()), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(MAX_RETRY_AFTER)
        );
        // Beyond u64: not a number m2m can read, and not a date.
        assert_eq!(parse("18446744073709551616"), None);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
    }
}
