//! The sandbox against its own documents: it enforces exactly what the
//! OpenAPI documents in `openapi/` declare.
//!
//! - Every example in every document — each request-body example, the body
//!   assembled from the examples of a schema's properties, and each
//!   parameter example — is sent to the sandbox and accepted (2xx).
//! - A `null` in every request-body field that the document does not declare
//!   `nullable` is refused with 400, and the error body names the field.
//!
//! The operations, parameters, schemas and examples are read from the
//! documents the crate embeds (`m2m::apis::Api::ALL`), so a new operation, a
//! new field or a new example is covered without touching this file.
//!
//! Cenda operations act on what earlier ones created: they run in the
//! vendor's onboarding order (`CENDA_ORDER`), and the identifiers the
//! sandbox assigns replace the documents' example identifiers.
#![cfg(feature = "sandbox")]

use std::collections::{BTreeMap, BTreeSet};

use m2m::apis::Api;
use m2m::sandbox::demo::{self, DemoClient};
use m2m::sandbox::{ProviderStyle, Sandbox};
use serde_json::{Map, Value, json};

/// The order in which Cenda operations run (creations first, deletions
/// last); operations not listed run after these, in document order.
const CENDA_ORDER: &[&str] = &[
    "createOrganisation",
    "validateOrganisation",
    "createCredentialTemplate",
    "listOrganisations",
    "getOrganisation",
    "updateOrganisation",
    "listCredentialTemplates",
    "getCredentialTemplate",
    "revokeCredential",
    "deleteCredentialTemplate",
    "deleteOrganisation",
];

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

// ------------------------------------------------------------- the documents

/// One operation as the document declares it, `$ref`s resolved.
#[derive(Debug, Clone)]
struct Operation {
    id: String,
    method: String,
    path: String,
    /// Path, query and header parameters (path-level ones included).
    parameters: Vec<Value>,
    /// The JSON request body's schema, if the operation takes one.
    body_schema: Option<Value>,
    /// The request body examples given at the media-type level.
    body_examples: Vec<(String, Value)>,
}

/// Follows `$ref` (local ones) until a plain object.
fn resolve<'a>(spec: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are supported: {reference}"));
        value = spec
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {reference}"));
    }
    panic!("a $ref cycle");
}

fn operations(spec: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let shared: Vec<Value> = item["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(spec, p).clone())
            .collect();
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let mut parameters = shared.clone();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                parameters.push(resolve(spec, parameter).clone());
            }
            let media = operation
                .get("requestBody")
                .map(|body| resolve(spec, body))
                .and_then(|body| body["content"].get("application/json"));
            let mut body_examples = Vec::new();
            if let Some(media) = media {
                if let Some(example) = media.get("example") {
                    body_examples.push(("example".to_owned(), example.clone()));
                }
                for (name, example) in media["examples"].as_object().into_iter().flatten() {
                    let example = resolve(spec, example);
                    body_examples.push((format!("examples.{name}"), example["value"].clone()));
                }
            }
            found.push(Operation {
                id: operation["operationId"]
                    .as_str()
                    .expect("an operationId")
                    .to_owned(),
                method: method.to_uppercase(),
                path: path.clone(),
                parameters,
                body_schema: media.map(|media| resolve(spec, &media["schema"]).clone()),
                body_examples,
            });
        }
    }
    found
}

/// A value built from the examples of `schema`: its own `example`, else
/// (objects) every property's, else (arrays) one item's. A property with
/// no example anywhere is recorded in `missing`.
fn assembled_example(spec: &Value, schema: &Value, at: &str, missing: &mut Vec<String>) -> Value {
    let schema = resolve(spec, schema);
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(properties) = schema["properties"].as_object() {
        let mut object = Map::new();
        for (name, property) in properties {
            let value = assembled_example(spec, property, &join(at, name), missing);
            object.insert(name.clone(), value);
        }
        return Value::Object(object);
    }
    if let Some(items) = schema.get("items") {
        return json!([assembled_example(spec, items, &format!("{at}[0]"), missing)]);
    }
    missing.push(at.to_owned());
    Value::Null
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Every field of `value` that `schema` describes and does not declare
/// `nullable`, as `(path, pointer)`: `attributes[0].name` and
/// `/attributes/0/name`.
fn non_nullable_fields(
    spec: &Value,
    schema: &Value,
    value: &Value,
    path: &str,
    pointer: &str,
    found: &mut Vec<(String, String)>,
) {
    let schema = resolve(spec, schema);
    if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object())
    {
        for (name, property) in properties {
            let Some(field) = object.get(name) else {
                continue;
            };
            let (path, pointer) = (join(path, name), format!("{pointer}/{name}"));
            if !resolve(spec, property)["nullable"]
                .as_bool()
                .unwrap_or(false)
            {
                found.push((path.clone(), pointer.clone()));
            }
            non_nullable_fields(spec, property, field, &path, &pointer, found);
        }
    }
    if let (Some(items), Some(first)) = (schema.get("items"), value.get(0)) {
        non_nullable_fields(
            spec,
            items,
            first,
            &format!("{path}[0]"),
            &format!("{pointer}/0"),
            found,
        );
    }
}

/// Whether an error body names `field`: as an object key (a problem
/// details' `errors`) or as a string value (`details[].field`).
fn names_field(body: &Value, field: &str) -> bool {
    match body {
        Value::Object(object) => object
            .iter()
            .any(|(key, value)| key == field || names_field(value, field)),
        Value::Array(items) => items.iter().any(|item| names_field(item, field)),
        Value::String(text) => text == field,
        _ => false,
    }
}

/// Whether a 2xx answer still refuses what was sent: NXTsoft's validation
/// message answers 200 with `status: Invalid` for a transaction that fails
/// its checks.
fn judged_invalid(answer: &Value) -> bool {
    answer["status"] == "Invalid"
}

// --------------------------------------------------------------- the sandbox

/// One API of a running sandbox, with a token that may call all of it.
struct Target {
    base_url: String,
    token: String,
    /// Example value of an identifier → the identifier the sandbox gave.
    ids: BTreeMap<String, String>,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn token(client: &DemoClient, scope: Option<&str>) -> String {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client.client_id),
        ("client_secret", client.client_secret),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let response = http()
        .post(&client.token_url)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn target(sandbox: &Sandbox, api: Api) -> Target {
    let (base_url, token) = match api {
        Api::cenda_configuration => (
            sandbox.cenda_api_url(),
            token(
                &sandbox.demo_client(ProviderStyle::Entra),
                Some(demo::CENDA_ENTRA_SCOPE),
            )
            .await,
        ),
        // No scope: Cognito grants every scope of the client.
        Api::nxtsoft_transactions => (
            sandbox.nxtsoft_api_url(),
            token(&sandbox.demo_client(ProviderStyle::Cognito), None).await,
        ),
    };
    Target {
        base_url,
        token,
        ids: BTreeMap::new(),
    }
}

impl Target {
    /// The example value of `parameter`, with a sandbox identifier in place
    /// of an example one.
    fn parameter_value(&self, parameter: &Value) -> Option<String> {
        let example = parameter
            .get("example")
            .or_else(|| parameter["schema"].get("example"))?;
        let text = match example {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        Some(self.ids.get(&text).cloned().unwrap_or(text))
    }

    /// `body` with every example identifier replaced by the sandbox's.
    fn substituted(&self, body: &Value) -> Value {
        match body {
            Value::String(text) => {
                Value::String(self.ids.get(text).cloned().unwrap_or_else(|| text.clone()))
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.substituted(v)).collect())
            }
            Value::Object(object) => Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), self.substituted(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Sends `operation` with its parameter examples and `body`; returns
    /// the status and the body (JSON, or the text as a JSON string).
    async fn send(&self, operation: &Operation, body: Option<&Value>) -> (u16, Value) {
        let mut path = operation.path.clone();
        let mut query = Vec::new();
        let mut request_headers = Vec::new();
        for parameter in &operation.parameters {
            let name = parameter["name"].as_str().unwrap();
            let value = self.parameter_value(parameter);
            match (parameter["in"].as_str().unwrap(), value) {
                ("path", Some(value)) => path = path.replace(&format!("{{{name}}}"), &value),
                ("path", None) => panic!("{}: path parameter {name} has no example", operation.id),
                ("query", Some(value)) => query.push((name.to_owned(), value)),
                ("header", Some(value)) => request_headers.push((name.to_owned(), value)),
                _ => {}
            }
        }
        let method = reqwest::Method::from_bytes(operation.method.as_bytes()).unwrap();
        let mut request = http()
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .query(&query);
        for (name, value) in request_headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(&self.substituted(body));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Remembers the identifiers a successful answer carries: a property
    /// named like a path parameter maps that parameter's example to it.
    fn learn_ids(&mut self, operations: &[Operation], answer: &Value) {
        let Some(object) = answer.as_object() else {
            return;
        };
        for parameter in operations.iter().flat_map(|op| &op.parameters) {
            let Some(name) = parameter["name"].as_str() else {
                continue;
            };
            if parameter["in"] != "path" {
                continue;
            }
            let (Some(Value::String(id)), Some(Value::String(example))) = (
                object.get(name),
                parameter
                    .get("example")
                    .or_else(|| parameter["schema"].get("example")),
            ) else {
                continue;
            };
            self.ids.insert(example.clone(), id.clone());
        }
    }
}

/// The examples of `operation`'s body: the media-type ones and the one
/// assembled from the schema's property examples.
fn body_examples(
    spec: &Value,
    operation: &Operation,
    missing: &mut Vec<String>,
) -> Vec<(String, Value)> {
    let mut examples = operation.body_examples.clone();
    if let Some(schema) = &operation.body_schema {
        let mut gaps = Vec::new();
        let assembled = assembled_example(spec, schema, "", &mut gaps);
        missing.extend(
            gaps.into_iter()
                .map(|gap| format!("{} body field {gap}", operation.id)),
        );
        examples.push(("property examples".to_owned(), assembled));
    }
    examples
}

/// Issues, through the sandbox's stand-in for Cenda's OIDC issuance, the
/// credential a revocation example names (once).
fn issue_what_is_revoked(
    sandbox: &Sandbox,
    revoke: &Value,
    issued: &mut BTreeSet<(String, String, String)>,
) {
    let field = |name: &str| revoke[name].as_str().unwrap_or_default().to_owned();
    let credential = (
        field("organisationId"),
        field("credentialTemplateName"),
        field("serialNumber"),
    );
    if issued.insert(credential.clone()) {
        sandbox
            .issue_credential(&credential.0, &credential.1, Some(&credential.2))
            .unwrap_or_else(|e| panic!("the revocation example names no credential to issue: {e}"));
    }
}

fn ordered(api: Api, mut operations: Vec<Operation>) -> Vec<Operation> {
    if api == Api::cenda_configuration {
        operations.sort_by_key(|op| {
            CENDA_ORDER
                .iter()
                .position(|id| *id == op.id)
                .unwrap_or(CENDA_ORDER.len())
        });
    }
    operations
}

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn every_example_in_every_document_is_accepted_and_every_null_refused() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut refused_examples = Vec::new();
    let mut accepted_nulls = Vec::new();
    let mut missing_examples = Vec::new();
    let (mut examples_sent, mut nulls_sent) = (0, 0);
    let mut issued = BTreeSet::new();

    for &api in Api::ALL {
        let spec: Value = serde_json::from_str(api.openapi_json()).unwrap();
        let operations = ordered(api, operations(&spec));
        let mut target = target(&sandbox, api).await;
        let (deletions, others): (Vec<_>, Vec<_>) =
            operations.iter().partition(|op| op.method == "DELETE");

        // Every example, in order; deletions last.
        for operation in &others {
            let examples = body_examples(&spec, operation, &mut missing_examples);
            let examples = if examples.is_empty() {
                vec![("parameters".to_owned(), Value::Null)]
            } else {
                examples
            };
            for (name, body) in examples {
                let body = (!body.is_null()).then_some(body);
                if operation.id == "revokeCredential"
                    && let Some(body) = &body
                {
                    issue_what_is_revoked(&sandbox, &target.substituted(body), &mut issued);
                }
                let (status, answer) = target.send(operation, body.as_ref()).await;
                examples_sent += 1;
                if (200..300).contains(&status) && !judged_invalid(&answer) {
                    target.learn_ids(&operations, &answer);
                } else {
                    refused_examples.push(format!(
                        "{} {}: {name} answered {status}: {answer}",
                        api.name(),
                        operation.id
                    ));
                }
            }
        }

        // A null in each non-nullable field of each body example.
        for operation in &others {
            let Some(schema) = &operation.body_schema else {
                continue;
            };
            for (name, example) in body_examples(&spec, operation, &mut Vec::new()) {
                let mut fields = Vec::new();
                non_nullable_fields(&spec, schema, &example, "", "", &mut fields);
                for (field, pointer) in fields {
                    let mut body = example.clone();
                    *body.pointer_mut(&pointer).unwrap() = Value::Null;
                    let (status, answer) = target.send(operation, Some(&body)).await;
                    nulls_sent += 1;
                    if status != 400 || !names_field(&answer, &field) {
                        accepted_nulls.push(format!(
                            "{} {} ({name}): null in {field} answered {status}: {answer}",
                            api.name(),
                            operation.id
                        ));
                    }
                }
            }
        }

        for operation in deletions {
            let (status, answer) = target.send(operation, None).await;
            examples_sent += 1;
            if !(200..300).contains(&status) {
                refused_examples.push(format!(
                    "{} {}: answered {status}: {answer}",
                    api.name(),
                    operation.id
                ));
            }
        }
    }

    assert!(examples_sent > 0 && nulls_sent > 0, "nothing was sent");
    assert_eq!(
        missing_examples,
        Vec::<String>::new(),
        "fields without an example"
    );
    assert!(
        refused_examples.is_empty() && accepted_nulls.is_empty(),
        "{} of {examples_sent} examples refused:\n{}\n\n{} of {nulls_sent} nulls not refused with 400 naming the field:\n{}",
        refused_examples.len(),
        refused_examples.join("\n"),
        accepted_nulls.len(),
        accepted_nulls.join("\n")
    );
}

/// A string header or query parameter is held to the length its document
/// declares, and to no other: at `maxLength` it is accepted, one past it is
/// refused with 400 naming the parameter; without `maxLength`, 1,000
/// characters are accepted.
#[tokio::test]
async fn parameters_are_held_to_their_declared_length_and_no_other() {
    const UNDECLARED_PROBE: usize = 1000;
    let sandbox = Sandbox::start().await.unwrap();
    let mut wrong = Vec::new();
    let mut probes = 0;
    for &api in Api::ALL {
        let spec: Value = serde_json::from_str(api.openapi_json()).unwrap();
        let operations = ordered(api, operations(&spec));
        let mut target = target(&sandbox, api).await;
        for (index, operation) in operations.iter().enumerate() {
            if operation.method == "DELETE" {
                continue;
            }
            let body = body_examples(&spec, operation, &mut Vec::new())
                .pop()
                .map(|(_, body)| body);
            // The example itself first: what later operations act on.
            let (status, answer) = target.send(operation, body.as_ref()).await;
            if (200..300).contains(&status) {
                target.learn_ids(&operations, &answer);
            }
            for parameter in &operation.parameters {
                let schema = resolve(&spec, &parameter["schema"]);
                let place = parameter["in"].as_str().unwrap();
                if schema["type"] != "string" || !matches!(place, "header" | "query") {
                    continue;
                }
                let name = parameter["name"].as_str().unwrap().to_owned();
                let lengths: Vec<(usize, bool)> = match schema["maxLength"].as_u64() {
                    Some(max) => vec![(max as usize, true), (max as usize + 1, false)],
                    None => vec![(UNDECLARED_PROBE, true)],
                };
                for (length, accepted) in lengths {
                    let mut probe = operation.clone();
                    for p in &mut probe.parameters {
                        if p["name"] == name.as_str() {
                            // A fresh value each time: `x…x` of this length,
                            // told apart by the operation's index.
                            let value = format!("{index}{}", "x".repeat(length - 1));
                            p["example"] = Value::String(value);
                        }
                    }
                    let (status, answer) = target.send(&probe, body.as_ref()).await;
                    probes += 1;
                    let ok = if accepted {
                        (200..300).contains(&status)
                    } else {
                        status == 400 && names_field(&answer, &name)
                    };
                    if !ok {
                        wrong.push(format!(
                            "{} {}: {name} of {length} characters answered {status}: {answer}",
                            api.name(),
                            operation.id
                        ));
                    }
                    if (200..300).contains(&status) {
                        target.learn_ids(&operations, &answer);
                    }
                }
            }
        }
    }
    assert!(probes > 0, "no string header or query parameter was probed");
    assert!(
        wrong.is_empty(),
        "{} of {probes} probes went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
