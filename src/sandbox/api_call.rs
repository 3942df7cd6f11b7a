//! One API request as the handlers see it, after the checks of its contract.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// One request as the handlers see it, after the checks of its contract.
pub(crate) struct ApiCall {
    pub(crate) params: HashMap<String, String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) now: SystemTime,
}

impl ApiCall {
    /// Deserializes the JSON body (already checked against the document's
    /// schema) into a generated request type; a failure names the field.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        let mut deserializer = serde_json::Deserializer::from_slice(&self.body);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let message = error.inner().to_string();
            Problem::invalid_field(field_of(&path, &message), "invalid", message)
        })?;
        deserializer
            .end()
            .map_err(|error| Problem::invalid_field("body", "invalid", error.to_string()))?;
        Ok(value)
    }

    /// A path parameter (the route guarantees it is there).
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// The field a deserialization error is about: its path, or for a missing
/// field at the top level, that field's name.
fn field_of(path: &str, message: &str) -> String {
    if path != "." {
        return path.to_owned();
    }
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .unwrap_or("body")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_top_level_field_is_named() {
        assert_eq!(
            field_of(".", "missing field `name` at line 1 column 2"),
            "name"
        );
        assert_eq!(field_of("claims[0].name", "bad"), "claims[0].name");
        assert_eq!(field_of(".", "expected value"), "body");
    }
}
