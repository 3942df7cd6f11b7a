//! The operations of an API as its OpenAPI document describes them: what
//! `m2m call` lists, explains and checks before anything is sent.

use std::sync::OnceLock;

use serde_json::Value;

use crate::dispatch::Api;

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A path segment (`/organisations/{organisationId}`).
    Path,
    /// The query string.
    Query,
    /// A request header.
    Header,
    /// A cookie.
    Cookie,
}

impl Location {
    /// `path`, `query`, `header` or `cookie`, as the document spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
            Self::Cookie => "cookie",
        }
    }
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// Its name, as the document spells it and `--param` takes it.
    pub name: String,
    /// Where it goes.
    pub location: Location,
    /// Whether the operation needs it.
    pub required: bool,
    /// The document's description (first sentence is enough for help).
    pub description: String,
    /// Its schema, `$ref`s left as they are.
    pub(crate) schema: Value,
}

/// The JSON request body of an operation.
#[derive(Debug, Clone)]
pub struct RequestBody {
    /// Whether the operation needs one.
    pub required: bool,
    /// The schema's name when it is a `$ref` (`TransactionRequest`).
    pub type_name: Option<String>,
    /// Its schema, `$ref`s left as they are.
    pub(crate) schema: Value,
}

/// One operation of one API.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The API it belongs to.
    pub api: Api,
    /// Its `operationId`, as the document spells it.
    pub operation_id: String,
    /// The HTTP method, upper case.
    pub method: String,
    /// The path template (`/api/Organisation/{organisationId}`).
    pub path: String,
    /// Its one-line summary.
    pub summary: String,
    /// Its longer description.
    pub description: String,
    /// Its parameters, path-level ones included, in document order.
    pub parameters: Vec<Parameter>,
    /// Its JSON request body, if it takes one.
    pub body: Option<RequestBody>,
}

/// A parsed OpenAPI document: its operations and the root for `$ref`s.
#[derive(Debug)]
pub(crate) struct Document {
    pub root: Value,
    pub operations: Vec<Operation>,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Document {
    /// The document of `api`, parsed once.
    pub fn of(api: Api) -> &'static Document {
        static DOCUMENTS: OnceLock<Vec<Document>> = OnceLock::new();
        let documents =
            DOCUMENTS.get_or_init(|| Api::ALL.iter().map(|api| Document::parse(*api)).collect());
        let index = Api::ALL
            .iter()
            .position(|candidate| *candidate == api)
            .unwrap_or(0);
        &documents[index]
    }

    fn parse(api: Api) -> Document {
        // build.rs wrote this JSON from a document progenitor accepted.
        let root: Value = serde_json::from_str(api.openapi_json()).unwrap_or_default();
        let mut operations = Vec::new();
        let paths = root.get("paths").and_then(Value::as_object);
        for (path, item) in paths.into_iter().flatten() {
            let shared: Vec<Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let Some(operation_id) = operation.get("operationId").and_then(Value::as_str)
                else {
                    continue;
                };
                let own = operation
                    .get("parameters")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                operations.push(Operation {
                    api,
                    operation_id: operation_id.to_owned(),
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    summary: text(operation, "summary"),
                    description: text(operation, "description"),
                    parameters: parameters(&root, &shared, &own),
                    body: body(&root, operation.get("requestBody")),
                });
            }
        }
        Document { root, operations }
    }

    /// `schema` with its `$ref`s followed (`#/components/...` only; a
    /// dangling or circular chain ends at the last schema reached).
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        resolve(&self.root, schema)
    }
}

fn resolve<'a>(root: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        match reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
        {
            Some(target) => value = target,
            None => return value,
        }
    }
    value
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Path-level parameters overridden by operation-level ones of the same
/// name and location, as OpenAPI says.
fn parameters(root: &Value, shared: &[Value], own: &[Value]) -> Vec<Parameter> {
    let mut merged: Vec<Parameter> = Vec::new();
    for raw in shared.iter().chain(own) {
        let raw = resolve(root, raw);
        let Some(name) = raw.get("name").and_then(Value::as_str) else {
            continue;
        };
        let location = match raw.get("in").and_then(Value::as_str) {
            Some("path") => Location::Path,
            Some("query") => Location::Query,
            Some("header") => Location::Header,
            Some("cookie") => Location::Cookie,
            _ => continue,
        };
        let parameter = Parameter {
            name: name.to_owned(),
            location,
            required: location == Location::Path
                || raw.get("required").and_then(Value::as_bool) == Some(true),
            description: text(raw, "description"),
            schema: raw.get("schema").cloned().unwrap_or(Value::Null),
        };
        match merged
            .iter_mut()
            .find(|p| p.name == parameter.name && p.location == location)
        {
            Some(existing) => *existing = parameter,
            None => merged.push(parameter),
        }
    }
    merged
}

fn body(root: &Value, raw: Option<&Value>) -> Option<RequestBody> {
    let raw = resolve(root, raw?);
    let content = raw.get("content")?.as_object()?;
    let (_, media) = content
        .iter()
        .find(|(media_type, _)| media_type.contains("json"))?;
    let schema = media.get("schema").cloned().unwrap_or(Value::Null);
    let type_name = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.rsplit('/').next())
        .map(str::to_owned);
    Some(RequestBody {
        required: raw.get("required").and_then(Value::as_bool) == Some(true),
        type_name,
        schema,
    })
}
