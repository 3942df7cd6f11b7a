//! The request a generated client sent and the answer it got, as the
//! server sent it: what `m2m call` shows, and what a caller can record
//! around any calls with [`tapped`].
//!
//! The hooks hand the final response to `keep`, which, inside [`tapped`],
//! reads the body as the server sent it (within the handle's
//! `max_response_bytes`, any token the request carried scrubbed from it),
//! records it and gives the generated code a copy to parse as usual.
//! Outside [`tapped`] it does nothing.

use std::future::Future;
use std::sync::{Arc, Mutex};

use http::HeaderValue;
use serde_json::Value;

/// The longest server message put on the error line.
const MAX_MESSAGE_CHARS: usize = 300;

tokio::task_local! {
    static TAP: Arc<Mutex<Tap>>;
}

/// What the hooks recorded while a call ran.
#[derive(Debug, Default)]
pub struct Tap {
    /// Method and URL (query secrets redacted) of the last request sent.
    pub request: Option<(String, String)>,
    /// Requests sent (2 when a rejected token was renewed and sent again).
    pub attempts: u32,
    /// The final response.
    pub exchange: Option<Exchange>,
}

/// Runs `future` (calls of generated clients), recording the last API
/// request and response their hooks send and receive meanwhile.
pub async fn tapped<F: Future>(future: F) -> (F::Output, Tap) {
    let tap = Arc::new(Mutex::new(Tap::default()));
    let output = TAP.scope(Arc::clone(&tap), future).await;
    let tap = std::mem::take(&mut *tap.lock().unwrap_or_else(|e| e.into_inner()));
    (output, tap)
}

fn with_tap(f: impl FnOnce(&mut Tap)) {
    let _ = TAP.try_with(|tap| f(&mut tap.lock().unwrap_or_else(|e| e.into_inner())));
}

/// Whether the current task is inside [`tapped`].
pub(crate) fn tapping() -> bool {
    TAP.try_with(|_| ()).is_ok()
}

/// Notes a request about to be sent.
pub(crate) fn note_request(method: &http::Method, url: &str) {
    with_tap(|tap| {
        tap.request = Some((method.to_string(), url.to_owned()));
        tap.attempts += 1;
    });
}

/// Inside [`tapped`]: reads and records `response`, returns a copy for
/// the generated code. Outside: returns `response` untouched.
pub(crate) async fn keep(
    mut response: reqwest::Response,
    sent: &[Option<HeaderValue>],
) -> reqwest::Result<reqwest::Response> {
    if !tapping() {
        return Ok(response);
    }
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    // The hooks have read the answer whole already, within the handle's
    // `max_response_bytes`: this copies it from memory.
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    for value in sent.iter().flatten() {
        scrub_credential(&mut body, value);
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    with_tap(|tap| {
        let (method, url) = tap.request.clone().unwrap_or_default();
        tap.exchange = Some(Exchange {
            method,
            url,
            status: status.as_u16(),
            content_type,
            body: body.clone(),
            attempts: tap.attempts,
        });
    });
    let mut copy = http::Response::new(body);
    *copy.status_mut() = status;
    *copy.version_mut() = version;
    *copy.headers_mut() = headers;
    Ok(reqwest::Response::from(copy))
}

/// Replaces the credential of the `Authorization` value `sent` (the part
/// after the scheme) wherever the body echoes it.
fn scrub_credential(body: &mut Vec<u8>, sent: &HeaderValue) {
    let bytes = sent.as_bytes();
    let credential = match bytes.iter().position(|b| *b == b' ') {
        Some(space) => &bytes[space + 1..],
        None => bytes,
    };
    if credential.len() < 8 {
        return;
    }
    const REDACTED: &[u8] = b"[redacted]";
    let found: Vec<usize> = memchr::memmem::find_iter(body, credential).collect();
    if found.is_empty() {
        return;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut from = 0;
    for at in found {
        if at < from {
            continue;
        }
        out.extend_from_slice(&body[from..at]);
        out.extend_from_slice(REDACTED);
        from = at + credential.len();
    }
    out.extend_from_slice(&body[from..]);
    *body = out;
}

/// One request and the server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The method sent.
    pub method: String,
    /// The URL sent, query secrets redacted.
    pub url: String,
    /// The status of the answer.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// Its body as the server sent it (any token of the request scrubbed),
    /// at most `max_response_bytes` of it.
    pub body: Vec<u8>,
    /// Requests sent: 2 when the API rejected the token and the call was
    /// sent again with a new one.
    pub attempts: u32,
}

impl Exchange {
    /// Whether the status is 2xx.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `GET https://… → 404 Not Found`.
    pub fn status_line(&self) -> String {
        let reason = self
            .reason_phrase()
            .map(|reason| format!(" {reason}"))
            .unwrap_or_default();
        format!("{} {} → {}{reason}", self.method, self.url, self.status)
    }

    /// The standard reason phrase of the status (`Not Found`).
    fn reason_phrase(&self) -> Option<&'static str> {
        http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason())
    }

    /// Whether the body is JSON (by its content type, or by parsing).
    pub fn body_is_json(&self) -> bool {
        !self.body.is_empty() && serde_json::from_slice::<Value>(&self.body).is_ok()
    }

    /// What the server said went wrong, on one line: problem details'
    /// `title`, `detail` and `errors`, `code`/`message`/`details`,
    /// `error`/`error_description`, or the first line of a text body;
    /// shortened, control characters removed.
    pub fn server_message(&self) -> Option<String> {
        let message = match serde_json::from_slice::<Value>(&self.body) {
            Ok(json) => json_message(&json, self.reason_phrase()),
            Err(_) => text_message(
                &String::from_utf8_lossy(&self.body),
                self.content_type
                    .as_deref()
                    .is_some_and(|t| t.contains("html")),
            ),
        }?;
        Some(shorten(&message))
    }
}

/// `json`'s message; a `title` equal to `reason` (the status line's own
/// reason phrase, already printed) is left out.
fn json_message(json: &Value, reason: Option<&str>) -> Option<String> {
    if let Some(text) = json.as_str() {
        return Some(text.to_owned());
    }
    let object = json.as_object()?;
    let text = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    let mut parts: Vec<String> = Vec::new();
    let mut push = |part: Option<String>| {
        if let Some(part) = part
            && !parts.iter().any(|p| p.contains(&part))
        {
            parts.push(part);
        }
    };
    push(text("title").filter(|title| Some(title.as_str()) != reason));
    push(text("error").map(|code| match text("error_description") {
        Some(description) => format!("{code}: {description}"),
        None => code,
    }));
    push(text("code").filter(|_| text("message").is_none()));
    push(text("message").map(|message| match text("code") {
        Some(code) => format!("{code}: {message}"),
        None => message,
    }));
    push(text("detail"));
    if let Some(nested) = object.get("error").filter(|e| e.is_object()) {
        push(json_message(nested, reason));
    }
    push(field_errors(
        object.get("errors").or_else(|| object.get("details")),
    ));
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// `errors` of problem details (`{"name": ["…"]}`) or a list of
/// `{field, message}`: `name: …; amount: …`.
fn field_errors(errors: Option<&Value>) -> Option<String> {
    let items: Vec<String> = match errors? {
        Value::Object(fields) => fields
            .iter()
            .map(|(field, messages)| {
                let messages: Vec<String> = match messages {
                    Value::Array(list) => list
                        .iter()
                        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                        .collect(),
                    Value::String(text) => vec![text.clone()],
                    other => vec![other.to_string()],
                };
                format!("{field}: {}", messages.join(" "))
            })
            .collect(),
        Value::Array(list) => list
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                Value::Object(entry) => {
                    let get = |key: &str| entry.get(key).and_then(Value::as_str);
                    match (get("field"), get("message")) {
                        (Some(field), Some(message)) if message.contains(field) => {
                            message.to_owned()
                        }
                        (Some(field), Some(message)) => format!("{field}: {message}"),
                        (None, Some(message)) => message.to_owned(),
                        _ => item.to_string(),
                    }
                }
                other => other.to_string(),
            })
            .collect(),
        _ => return None,
    };
    (!items.is_empty()).then(|| items.join("; "))
}

fn text_message(text: &str, html: bool) -> Option<String> {
    let text = if html || text.trim_start().starts_with('<') {
        strip_tags(text)
    } else {
        text.to_owned()
    };
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}

/// The text of an HTML page, tags and the contents of `<script>` and
/// `<style>` removed, one line per block.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let lower = after.get(..8).unwrap_or(after).to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            after.to_ascii_lowercase().find("</script>").map(|i| i + 9)
        } else if lower.starts_with("<style") {
            after.to_ascii_lowercase().find("</style>").map(|i| i + 8)
        } else {
            after.find('>').map(|i| i + 1)
        };
        match skip_to {
            Some(end) => {
                out.push('\n');
                rest = &after[end..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// One line of at most [`MAX_MESSAGE_CHARS`], control characters removed.
fn shorten(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if line.chars().count() <= MAX_MESSAGE_CHARS {
        line
    } else {
        let cut: String = line.chars().take(MAX_MESSAGE_CHARS - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(content_type: &str, body: &str) -> Exchange {
        Exchange {
            method: "GET".into(),
            url: "http://127.0.0.1:9/x".into(),
            status: 400,
            content_type: Some(content_type.into()),
            body: body.as_bytes().to_vec(),
            attempts: 1,
        }
    }

    #[test]
    fn problem_details_give_title_detail_and_errors() {
        let body = r#"{"type":"https://example/400","title":"One or more validation errors occurred.","status":400,"detail":"See errors.","errors":{"name":["The Name field is required."]}}"#;
        assert_eq!(
            exchange("application/problem+json", body)
                .server_message()
                .unwrap(),
            "One or more validation errors occurred.: See errors.: name: The Name field is required."
        );
    }

    #[test]
    fn a_title_that_repeats_the_reason_phrase_is_not_said_twice() {
        let body =
            r#"{"title":"Not Found","status":404,"detail":"Organisation nope was not found."}"#;
        let mut answer = exchange("application/problem+json", body);
        answer.status = 404;
        assert_eq!(
            answer.server_message().unwrap(),
            "Organisation nope was not found."
        );
        // A title that says more than the status line is kept.
        answer.status = 400;
        assert_eq!(
            answer.server_message().unwrap(),
            "Not Found: Organisation nope was not found."
        );
    }

    #[test]
    fn code_message_details_and_oauth_errors() {
        let body = r#"{"code":"invalid_request","message":"The request body is not valid.","details":[{"field":"routingNumber","message":"routingNumber must be exactly 9 digits."}]}"#;
        assert_eq!(
            exchange("application/json", body).server_message().unwrap(),
            "invalid_request: The request body is not valid.: routingNumber must be exactly 9 digits."
        );
        let body = r#"{"error":"invalid_token","error_description":"expired"}"#;
        assert_eq!(
            exchange("application/json", body).server_message().unwrap(),
            "invalid_token: expired"
        );
        assert_eq!(exchange("application/json", "{}").server_message(), None);
    }

    #[test]
    fn text_and_html_give_their_first_line_shortened() {
        let html = "<html><head><title>502 Bad Gateway</title><style>p{}</style></head>\n<body><h1>Bad gateway</h1></body></html>";
        assert_eq!(
            exchange("text/html", html).server_message().unwrap(),
            "502 Bad Gateway"
        );
        let long = format!("upstream said:\u{1b}[31m {}\nsecond line", "x".repeat(1000));
        let message = exchange("text/plain", &long).server_message().unwrap();
        assert!(message.starts_with("upstream said: [31m xxx"), "{message}");
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(!message.contains('\u{1b}'));
    }

    #[test]
    fn an_echoed_token_is_scrubbed() {
        let sent = HeaderValue::from_static("Bearer eyJhbGc.secret-part.sig");
        let mut body = b"{\"echo\":\"Bearer eyJhbGc.secret-part.sig\",\"again\":\"eyJhbGc.secret-part.sigeyJhbGc.secret-part.sig\"}".to_vec();
        scrub_credential(&mut body, &sent);
        assert_eq!(
            body,
            b"{\"echo\":\"Bearer [redacted]\",\"again\":\"[redacted][redacted]\"}"
        );
        let mut untouched = b"nothing to see".to_vec();
        scrub_credential(&mut untouched, &sent);
        assert_eq!(untouched, b"nothing to see");
    }
}
