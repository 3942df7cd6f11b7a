//! Reading a token request: its form body and its client authentication.
//!
//! Every endpoint takes a form body only and refuses a parameter sent twice.
//! Client authentication: the secret in the form body or HTTP Basic (id and
//! secret form-urlencoded before Base64, RFC 6749 §2.3.1). Sending both is
//! refused, except at the OIDC endpoint, which accepts Basic and body
//! together when they agree (Apiture's guide shows both).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::demo::ProviderStyle;
use super::refusal::Refusal;

pub(crate) fn parse_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, Refusal> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(Refusal::NotForm);
    }
    let mut params = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        // RFC 6749 §3.1: a parameter without a value is as if omitted.
        if value.is_empty() {
            continue;
        }
        if params
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(Refusal::DuplicateParameter(name.into_owned()));
        }
    }
    Ok(params)
}

pub(crate) struct ClientCredentials {
    pub(crate) id: String,
    pub(crate) secret: Option<String>,
}

pub(crate) fn client_credentials(
    style: ProviderStyle,
    headers: &HeaderMap,
    params: &BTreeMap<String, String>,
) -> Result<ClientCredentials, Refusal> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    if let (ProviderStyle::Oidc, Some(id), Some(secret), true) =
        (style, body_id, body_secret, has_basic(headers))
    {
        // Apiture's guide: Basic `base64(client-id:client-secret)` as is,
        // and the same id and secret in the body. The body is authoritative;
        // the header must say the same, raw or RFC 6749-encoded.
        return if basic_matches(headers, id, secret) {
            Ok(ClientCredentials {
                id: id.clone(),
                secret: Some(secret.clone()),
            })
        } else {
            Err(Refusal::CredentialsDisagree)
        };
    }
    let Some((id, secret)) = basic_credentials(headers)? else {
        let id = body_id.ok_or(Refusal::NoClientAuth)?;
        return Ok(ClientCredentials {
            id: id.clone(),
            secret: body_secret.cloned(),
        });
    };
    if let Some(body_secret) = body_secret {
        if style != ProviderStyle::Oidc {
            return Err(Refusal::DoubleClientAuth);
        }
        if *body_secret != secret {
            return Err(Refusal::CredentialsDisagree);
        }
    }
    if body_id.is_some_and(|body_id| *body_id != id) {
        return Err(Refusal::CredentialsDisagree);
    }
    Ok(ClientCredentials {
        id,
        secret: Some(secret),
    })
}

pub(crate) fn has_basic(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
}

/// Whether the Basic header carries `id` and `secret`, either as RFC 6749
/// §2.3.1 prescribes or raw (`base64(id ":" secret)`).
fn basic_matches(headers: &HeaderMap, id: &str, secret: &str) -> bool {
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .and_then(|(_, credentials)| STANDARD.decode(credentials.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    raw.is_some_and(|raw| raw == format!("{id}:{secret}"))
        || matches!(basic_credentials(headers), Ok(Some((i, s))) if i == id && s == secret)
}

/// The id and secret of an `Authorization: Basic` header, decoded as
/// RFC 6749 §2.3.1 says; `None` without such a header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Refusal> {
    if !has_basic(headers) {
        return Ok(None);
    }
    let encoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .map(|(_, credentials)| credentials.trim())
        .unwrap_or_default();
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(Refusal::MalformedBasic)?;
    let (id, secret) = decoded.split_once(':').ok_or(Refusal::MalformedBasic)?;
    match (form_urldecode(id), form_urldecode(secret)) {
        (Some(id), Some(secret)) if !id.is_empty() => Ok(Some((id, secret))),
        _ => Err(Refusal::MalformedBasic),
    }
}

/// Strict `application/x-www-form-urlencoded` decoding: `+` is a space,
/// `%XX` a byte; a `%` not followed by two hex digits is an error.
fn form_urldecode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = hex_value(*bytes.get(i + 1)?)?;
                let low = hex_value(*bytes.get(i + 2)?)?;
                out.push(high << 4 | low);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::HeaderValue;

    fn basic(raw: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(raw));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        headers
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        let decoded = basic_credentials(&basic(
            "my%20id:s3cret%3Awith%2Freserved%2Bchars%25%26%3D%3F+x",
        ));
        assert_eq!(
            decoded,
            Ok(Some((
                "my id".to_owned(),
                "s3cret:with/reserved+chars%&=? x".to_owned()
            )))
        );
    }

    #[test]
    fn raw_percent_and_missing_colon_are_malformed() {
        assert_eq!(
            basic_credentials(&basic("id:50%off")),
            Err(Refusal::MalformedBasic)
        );
        assert_eq!(
            basic_credentials(&basic("id:%+1")),
            Err(Refusal::MalformedBasic)
        );
        assert_eq!(
            basic_credentials(&basic("no-colon")),
            Err(Refusal::MalformedBasic)
        );
        assert_eq!(basic_credentials(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn form_refuses_repeats_and_other_media_types() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        assert_eq!(
            parse_form(&headers, b"scope=a&scope=b"),
            Err(Refusal::DuplicateParameter("scope".into()))
        );
        let params = parse_form(&headers, b"grant_type=client_credentials&scope=").unwrap();
        assert_eq!(params.len(), 1, "an empty value counts as omitted");
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(parse_form(&headers, b"{}"), Err(Refusal::NotForm));
    }
}
