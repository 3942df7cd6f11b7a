//! One OpenAPI document, read and checked.

use std::path::{Path, PathBuf};

use crate::Error;

/// An OpenAPI 3.0 document a client is generated from.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it was read from.
    pub path: PathBuf,
    /// The file name without its extension (`petstore-v2`): the generated
    /// files are `<stem>.rs` and `<stem>.json`.
    pub stem: String,
    /// The module the client goes in (`petstore_v2`).
    pub module: String,
    /// `info.title`.
    pub title: String,
    /// The document, parsed.
    pub spec: openapiv3::OpenAPI,
    /// The document as JSON (what the module's `OPENAPI_JSON` holds).
    pub json: String,
}

impl Document {
    /// Reads `path` (JSON when it ends in `.json`, YAML otherwise) and
    /// checks it is OpenAPI 3.0.x.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let fail = |problem: String| Error {
            path: path.to_owned(),
            problem,
        };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| fail("the file name is not valid UTF-8".to_owned()))?
            .to_owned();
        let module = module_name(&stem).ok_or_else(|| {
            fail(format!(
                "the file name {stem:?} does not make a Rust module name (letters, digits, `-` or `_`, not starting with a digit)"
            ))
        })?;
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let value: serde_json::Value = if path.extension().is_some_and(|ext| ext == "json") {
            serde_json::from_str(&text).map_err(|e| fail(format!("invalid JSON: {e}")))?
        } else {
            serde_norway::from_str(&text).map_err(|e| fail(format!("invalid YAML: {e}")))?
        };
        let version = value.get("openapi").and_then(|v| v.as_str()).unwrap_or("");
        if !version.starts_with("3.0.") {
            return Err(fail(format!(
                "OpenAPI version {version:?} is not supported: progenitor needs 3.0.x \
                 (convert a 3.1 document down, or ask the vendor for a 3.0 export)"
            )));
        }
        let json =
            serde_json::to_string(&value).map_err(|e| fail(format!("cannot serialise: {e}")))?;
        let spec: openapiv3::OpenAPI = serde_json::from_value(value)
            .map_err(|e| fail(format!("not a valid OpenAPI 3.0 document: {e}")))?;
        Ok(Self {
            path: path.to_owned(),
            stem,
            module,
            title: spec.info.title.clone(),
            spec,
            json,
        })
    }
}

/// `petstore-v2` → `petstore_v2`; `None` when that is no identifier.
fn module_name(stem: &str) -> Option<String> {
    let name: String = stem
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(|c| !c.is_ascii_digit())
        && syn::parse_str::<syn::Ident>(&name).is_ok();
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::module_name;

    #[test]
    fn module_names_follow_the_file_name() {
        assert_eq!(
            module_name("cenda-configuration").as_deref(),
            Some("cenda_configuration")
        );
        assert_eq!(module_name("Petstore").as_deref(), Some("petstore"));
        assert_eq!(module_name("2fa"), None);
        assert_eq!(module_name("type"), None);
        assert_eq!(module_name("a.b"), None);
    }
}
