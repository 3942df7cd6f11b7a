//! Secrets kept out of what m2m shows: text from a server scrubbed of every
//! secret a request carried, and URLs shown without their password.

use url::Url;

/// Turns secret-bearing text from a server into a short, printable excerpt.
///
/// Every known secret (client secret, its form-urlencoded form, the Basic
/// credentials, the assertion) is replaced *before* the text is shortened, so
/// no complete secret survives and truncation cannot reveal one.
#[derive(Default)]
pub(crate) struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// Characters kept in an excerpt.
    pub(crate) const EXCERPT_CHARS: usize = 200;
    /// Characters kept of an `error_description`.
    pub(crate) const DESCRIPTION_CHARS: usize = 500;

    /// Adds a secret to scrub (empty strings are ignored).
    pub(crate) fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if !secret.is_empty() && !self.secrets.contains(&secret) {
            self.secrets.push(secret);
        }
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        // Longest first, so a secret that contains another is removed whole.
        let mut secrets: Vec<&String> = self.secrets.iter().collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
    }

    /// A scrubbed, single-line excerpt of at most `max` characters.
    pub(crate) fn excerpt(&self, body: &[u8], max: usize) -> Option<String> {
        let text = String::from_utf8_lossy(body);
        let scrubbed = self.scrub(&text);
        let mut line = String::new();
        let mut last_space = true;
        for c in scrubbed.chars() {
            let c = if c.is_control() || c.is_whitespace() {
                ' '
            } else {
                c
            };
            if c == ' ' && last_space {
                continue;
            }
            last_space = c == ' ';
            line.push(c);
        }
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        let mut short: String = line.chars().take(max).collect();
        if short.len() < line.len() {
            short.push('…');
        }
        Some(short)
    }
}

/// `url` as text with its password, if any, replaced: for logs and `Debug`
/// (a Redis URL may carry one).
pub(crate) fn redact_password(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Only fails for URLs that cannot have a password at all.
        let _ = shown.set_password(Some("redacted"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubber_removes_secrets_before_truncating() {
        let mut scrubber = Scrubber::default();
        scrubber.add("s3cret");
        scrubber.add("");
        let body = format!("{}s3cret and more", "x".repeat(196));
        let excerpt = scrubber.excerpt(body.as_bytes(), 200).unwrap();
        assert!(!excerpt.contains("s3c"), "{excerpt}");
        assert_eq!(excerpt.chars().count(), 201);
        assert_eq!(
            scrubber
                .excerpt(b"<html>\n\n  <b>s3cret</b>\r\n</html>", 200)
                .as_deref(),
            Some("<html> <b>[redacted]</b> </html>")
        );
        assert_eq!(scrubber.excerpt(b" \n ", 200), None);
    }
}
