//! What an OpenAPI document declares about a request, enforced.
//!
//! The sandbox checks every request's parameters and JSON body against the
//! schemas of the document it serves, read from the JSON the crate embeds:
//! what the document allows is accepted, and what it does not is refused
//! with 400 naming the field (`attributes[0].dataType`) or parameter. The
//! handlers then apply only the rules the document states in words (a
//! template before validation, a missing `SerialNumber`, …).
//!
//! A schema keyword the sandbox cannot enforce (`oneOf`, `multipleOf`, an
//! unknown `format`, …) stops the sandbox from starting, naming it: the
//! sandbox never silently enforces less than the document says.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use super::problem::{FieldProblem, Problem};

/// Schema keywords that only describe (nothing to enforce).
const ANNOTATIONS: [&str; 5] = ["description", "example", "default", "title", "format"];
/// Schema keywords this module enforces.
const ENFORCED: [&str; 17] = [
    "$ref",
    "type",
    "nullable",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
];
/// The `format`s this module checks; any other stops the sandbox.
const FORMATS: [&str; 9] = [
    "date",
    "date-time",
    "uuid",
    "email",
    "uri",
    "int32",
    "int64",
    "double",
    "float",
];

/// The most field problems one answer lists.
const MAX_PROBLEMS: usize = 50;

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Path,
    Query,
    Header,
}

#[derive(Debug)]
struct Parameter {
    name: String,
    location: Location,
    required: bool,
    schema: Value,
}

/// The declared request of one operation.
#[derive(Debug)]
pub(crate) struct RequestContract {
    spec: Arc<Value>,
    patterns: Arc<HashMap<String, regress::Regex>>,
    parameters: Vec<Parameter>,
    /// The `application/json` body schema, and whether a body is required.
    body: Option<(Value, bool)>,
}

/// The request contracts of a document, by `operationId`.
pub(crate) fn request_contracts(
    spec_json: &str,
) -> Result<HashMap<String, RequestContract>, String> {
    let spec: Arc<Value> =
        Arc::new(serde_json::from_str(spec_json).map_err(|e| format!("not JSON: {e}"))?);
    let mut declared = Vec::new();
    let paths = spec["paths"].as_object().ok_or("no paths")?;
    for (path, item) in paths {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let Some(operation_id) = operation.get("operationId").and_then(Value::as_str) else {
                continue;
            };
            let at = |what: &str| format!("{method} {path} {what}");
            let mut parameters = Vec::new();
            let listed = item["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(operation["parameters"].as_array().into_iter().flatten());
            for parameter in listed {
                let parameter = resolve(&spec, parameter).map_err(|e| at(&e))?;
                let name = parameter["name"]
                    .as_str()
                    .ok_or_else(|| at("a parameter has no name"))?;
                let location = match parameter["in"].as_str() {
                    Some("path") => Location::Path,
                    Some("query") => Location::Query,
                    Some("header") => Location::Header,
                    other => {
                        return Err(at(&format!(
                            "parameter {name} in {other:?} is not supported"
                        )));
                    }
                };
                parameters.push(Parameter {
                    name: name.to_owned(),
                    location,
                    required: parameter["required"].as_bool().unwrap_or(false),
                    schema: parameter["schema"].clone(),
                });
            }
            let body = match operation.get("requestBody") {
                None => None,
                Some(body) => {
                    let body = resolve(&spec, body).map_err(|e| at(&e))?;
                    let content = body["content"]
                        .as_object()
                        .ok_or_else(|| at("requestBody without content"))?;
                    if content.len() != 1 || !content.contains_key("application/json") {
                        return Err(at("the sandbox reads application/json request bodies only"));
                    }
                    Some((
                        content["application/json"]["schema"].clone(),
                        body["required"].as_bool().unwrap_or(false),
                    ))
                }
            };
            declared.push((operation_id.to_owned(), parameters, body));
        }
    }
    let mut patterns = HashMap::new();
    for (operation_id, parameters, body) in &declared {
        let schemas = parameters
            .iter()
            .map(|p| (&p.schema, format!("{operation_id} parameter {}", p.name)))
            .chain(
                body.iter()
                    .map(|(schema, _)| (schema, format!("{operation_id} body"))),
            );
        for (schema, at) in schemas {
            audit(&spec, schema, &at, &mut patterns, 0)?;
        }
    }
    let patterns = Arc::new(patterns);
    Ok(declared
        .into_iter()
        .map(|(operation_id, parameters, body)| {
            let contract = RequestContract {
                spec: Arc::clone(&spec),
                patterns: Arc::clone(&patterns),
                parameters,
                body,
            };
            (operation_id, contract)
        })
        .collect())
}

/// Follows local `$ref`s.
fn resolve<'a>(spec: &'a Value, mut value: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..32 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return Ok(value);
        };
        value = reference
            .strip_prefix('#')
            .and_then(|pointer| spec.pointer(pointer))
            .ok_or_else(|| format!("cannot resolve $ref {reference}"))?;
    }
    Err("a $ref cycle".to_owned())
}

/// Fails on a keyword or `format` the sandbox cannot enforce; compiles the
/// patterns.
fn audit(
    spec: &Value,
    schema: &Value,
    at: &str,
    patterns: &mut HashMap<String, regress::Regex>,
    depth: usize,
) -> Result<(), String> {
    if depth > 32 {
        return Err(format!("{at}: schemas nested deeper than 32 levels"));
    }
    let schema = resolve(spec, schema).map_err(|e| format!("{at}: {e}"))?;
    let object = schema
        .as_object()
        .ok_or_else(|| format!("{at}: a schema is not an object"))?;
    for key in object.keys() {
        let known = ANNOTATIONS.contains(&key.as_str())
            || ENFORCED.contains(&key.as_str())
            || key.starts_with("x-");
        if !known {
            return Err(format!("{at}: the sandbox cannot enforce `{key}`"));
        }
    }
    if let Some(format) = object.get("format").and_then(Value::as_str)
        && !FORMATS.contains(&format)
    {
        return Err(format!("{at}: the sandbox cannot check format `{format}`"));
    }
    if let Some(pattern) = object.get("pattern").and_then(Value::as_str) {
        let regex = regress::Regex::new(pattern)
            .map_err(|e| format!("{at}: pattern {pattern:?} is not an ECMA-262 regex: {e}"))?;
        patterns.insert(pattern.to_owned(), regex);
    }
    for (name, property) in object
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        audit(spec, property, &join(at, name), patterns, depth + 1)?;
    }
    if let Some(extra) = object.get("additionalProperties").filter(|v| v.is_object()) {
        audit(spec, extra, &format!("{at}.*"), patterns, depth + 1)?;
    }
    if let Some(items) = object.get("items") {
        audit(spec, items, &format!("{at}[]"), patterns, depth + 1)?;
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

impl RequestContract {
    /// Checks a request against the contract; all problems at once.
    pub(crate) fn check(
        &self,
        path_params: &HashMap<String, String>,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Problem> {
        let mut problems = Vec::new();
        let query: HashMap<String, String> = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        for parameter in &self.parameters {
            let raw = match parameter.location {
                Location::Path => path_params.get(&parameter.name).cloned(),
                Location::Query => query.get(&parameter.name).cloned(),
                Location::Header => match headers.get(&parameter.name).map(|v| v.to_str()) {
                    None => None,
                    Some(Ok(text)) => Some(text.to_owned()),
                    Some(Err(_)) => {
                        problems.push(problem(&parameter.name, "must be visible ASCII text."));
                        continue;
                    }
                },
            };
            match raw {
                None if parameter.required => {
                    problems.push(problem(&parameter.name, "is required."));
                }
                None => {}
                Some(raw) => {
                    let value = self.parameter_value(&parameter.schema, raw);
                    self.check_value(&parameter.schema, &value, &parameter.name, &mut problems);
                }
            }
        }
        if let Some((schema, required)) = &self.body {
            match parse_body(headers, body) {
                Ok(None) if *required => problems.push(problem("body", "is required.")),
                Ok(None) => {}
                Ok(Some(value)) => self.check_value(schema, &value, "", &mut problems),
                Err(body_problem) => problems.push(body_problem),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            // A body of a million bad items gets a bounded answer.
            problems.truncate(MAX_PROBLEMS);
            Err(Problem::invalid(problems))
        }
    }

    /// A parameter's text as the JSON value its schema expects (a number
    /// for `type: integer`, …); text that is not one stays a string and
    /// fails the type check.
    fn parameter_value(&self, schema: &Value, raw: String) -> Value {
        let schema = resolve(&self.spec, schema).unwrap_or(schema);
        let parsed = match schema["type"].as_str() {
            Some("integer") => raw.parse::<i64>().ok().map(Value::from),
            Some("number") => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            Some("boolean") => raw.parse::<bool>().ok().map(Value::Bool),
            _ => None,
        };
        parsed.unwrap_or(Value::String(raw))
    }

    fn check_value(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        problems: &mut Vec<FieldProblem>,
    ) {
        let Ok(schema) = resolve(&self.spec, schema) else {
            // Audited at start-up: every $ref resolves.
            return;
        };
        let field = if at.is_empty() { "body" } else { at };
        if value.is_null() {
            if !schema["nullable"].as_bool().unwrap_or(false) {
                problems.push(problem(field, "must not be null."));
            }
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            let names: Vec<String> = allowed
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect();
            problems.push(problem(
                field,
                &format!("must be one of: {}.", names.join(", ")),
            ));
            return;
        }
        match (schema["type"].as_str(), value) {
            (Some("string"), Value::String(text)) => {
                self.check_string(schema, text, field, problems)
            }
            (Some("integer"), Value::Number(number)) if number.is_i64() || number.is_u64() => {
                let fits = match schema["format"].as_str() {
                    Some("int32") => number.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                    Some("int64") => number.is_i64(),
                    _ => true,
                };
                if !fits {
                    problems.push(problem(field, "is out of range for its integer format."));
                }
                check_bounds(schema, number.as_f64().unwrap_or(f64::NAN), field, problems);
            }
            (Some("number"), Value::Number(number)) => {
                check_bounds(schema, number.as_f64().unwrap_or(f64::NAN), field, problems);
            }
            (Some("boolean"), Value::Bool(_)) => {}
            (Some("array"), Value::Array(items)) => {
                let count = items.len() as u64;
                if let Some(min) = schema["minItems"].as_u64()
                    && count < min
                {
                    problems.push(problem(
                        field,
                        &format!("must have at least {min} item(s)."),
                    ));
                }
                if let Some(max) = schema["maxItems"].as_u64()
                    && count > max
                {
                    problems.push(problem(field, &format!("must have at most {max} item(s).")));
                }
                for (index, item) in items.iter().enumerate() {
                    self.check_value(&schema["items"], item, &format!("{at}[{index}]"), problems);
                }
            }
            (Some("object"), Value::Object(object)) => {
                self.check_object(schema, object, at, problems)
            }
            (Some(expected), _) => {
                problems.push(problem(field, &format!("must be of type {expected}.")));
            }
            // No type: anything goes.
            (None, _) => {}
        }
    }

    fn check_string(
        &self,
        schema: &Value,
        text: &str,
        field: &str,
        problems: &mut Vec<FieldProblem>,
    ) {
        let length = text.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64()
            && length < min
        {
            problems.push(problem(
                field,
                &format!("must be at least {min} character(s) long."),
            ));
        }
        if let Some(max) = schema["maxLength"].as_u64()
            && length > max
        {
            problems.push(problem(
                field,
                &format!("must be at most {max} character(s) long."),
            ));
        }
        if let Some(pattern) = schema["pattern"].as_str()
            && let Some(regex) = self.patterns.get(pattern)
            && regex.find(text).is_none()
        {
            problems.push(problem(
                field,
                &format!("must match the pattern {pattern}."),
            ));
        }
        let well_formed = match schema["format"].as_str() {
            Some("date") => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
            Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
            _ => true,
        };
        if !well_formed {
            let format = schema["format"].as_str().unwrap_or_default();
            problems.push(problem(field, &format!("is not a valid {format}.")));
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        object: &Map<String, Value>,
        at: &str,
        problems: &mut Vec<FieldProblem>,
    ) {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            if let Some(name) = required.as_str()
                && !object.contains_key(name)
            {
                problems.push(problem(&join(at, name), "is required."));
            }
        }
        for (name, value) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => self.check_value(property, value, &join(at, name), problems),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        problems.push(problem(
                            &join(at, name),
                            "is not a property of this object.",
                        ));
                    }
                    Some(extra) if extra.is_object() => {
                        self.check_value(extra, value, &join(at, name), problems);
                    }
                    _ => {}
                },
            }
        }
    }
}

fn check_bounds(schema: &Value, number: f64, field: &str, problems: &mut Vec<FieldProblem>) {
    if let Some(min) = schema["minimum"].as_f64() {
        let exclusive = schema["exclusiveMinimum"].as_bool().unwrap_or(false);
        if number < min || (exclusive && number <= min) {
            let relation = if exclusive {
                "greater than"
            } else {
                "at least"
            };
            problems.push(problem(field, &format!("must be {relation} {min}.")));
        }
    }
    if let Some(max) = schema["maximum"].as_f64() {
        let exclusive = schema["exclusiveMaximum"].as_bool().unwrap_or(false);
        if number > max || (exclusive && number >= max) {
            let relation = if exclusive { "less than" } else { "at most" };
            problems.push(problem(field, &format!("must be {relation} {max}.")));
        }
    }
}

/// The JSON body, `None` when empty; a problem when it is not JSON.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Option<Value>, FieldProblem> {
    if body.is_empty() {
        return Ok(None);
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|media| media.trim().to_ascii_lowercase())
        .is_some_and(|media| media == "application/json" || media.ends_with("+json"));
    if !is_json {
        return Err(problem("body", "must be application/json."));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|error| problem("body", &format!("is not valid JSON: {error}.")))
}

fn problem(field: &str, what: &str) -> FieldProblem {
    FieldProblem {
        field: field.to_owned(),
        code: "invalid",
        message: format!("The {field} field {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract(body_schema: Value, components: Value) -> RequestContract {
        let spec = json!({
            "openapi": "3.0.3",
            "paths": {"/things": {"post": {
                "operationId": "createThing",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 4}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": body_schema}}}
            }}},
            "components": {"schemas": components}
        });
        request_contracts(&spec.to_string())
            .unwrap()
            .remove("createThing")
            .unwrap()
    }

    fn fields(contract: &RequestContract, headers: &[(&str, &str)], body: Value) -> Vec<String> {
        let mut map = HeaderMap::new();
        map.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        for (name, value) in headers {
            map.insert(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        match contract.check(&HashMap::new(), None, &map, body.to_string().as_bytes()) {
            Ok(()) => Vec::new(),
            Err(problem) => problem.fields.into_iter().map(|f| f.field).collect(),
        }
    }

    #[test]
    fn nested_fields_are_named_by_their_path() {
        let contract = contract(
            json!({"$ref": "#/components/schemas/Thing"}),
            json!({
                "Thing": {"type": "object", "required": ["name", "parts"], "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "note": {"type": "string", "nullable": true},
                    "parts": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Part"}}
                }},
                "Part": {"type": "object", "required": ["kind"], "properties": {
                    "kind": {"type": "string", "enum": ["A", "B"]},
                    "size": {"type": "integer", "format": "int32", "minimum": 0, "exclusiveMinimum": true},
                    "code": {"type": "string", "pattern": "^[0-9]{3}$"}
                }}
            }),
        );
        let valid =
            json!({"name": "x", "note": null, "parts": [{"kind": "A", "size": 3, "code": "123"}]});
        assert_eq!(fields(&contract, &[], valid), Vec::<String>::new());
        let invalid = json!({"name": null, "parts": [
            {"kind": "C"}, {"kind": "B", "size": 0}, {"kind": "A", "code": "12"}, {"kind": null, "size": 1.5}
        ]});
        assert_eq!(
            fields(&contract, &[("idempotency-key", "12345")], invalid),
            [
                "Idempotency-Key",
                "name",
                "parts[0].kind",
                "parts[1].size",
                "parts[2].code",
                "parts[3].kind",
                "parts[3].size"
            ]
        );
        assert_eq!(
            fields(&contract, &[], json!({"parts": []})),
            ["name", "parts"]
        );
        let many = json!({"name": "x", "parts": vec![json!({"kind": "C"}); 10_000]});
        assert_eq!(fields(&contract, &[], many).len(), MAX_PROBLEMS);
    }

    #[test]
    fn keywords_it_cannot_enforce_stop_it() {
        let spec = |schema: Value| {
            json!({"paths": {"/t": {"post": {"operationId": "t",
                "requestBody": {"content": {"application/json": {"schema": schema}}}}}}})
            .to_string()
        };
        let error =
            request_contracts(&spec(json!({"type": "number", "multipleOf": 0.01}))).unwrap_err();
        assert_eq!(error, "t body: the sandbox cannot enforce `multipleOf`");
        let error =
            request_contracts(&spec(json!({"type": "string", "format": "hostname"}))).unwrap_err();
        assert_eq!(error, "t body: the sandbox cannot check format `hostname`");
        assert!(
            request_contracts(&spec(json!({"type": "string", "x-m2m-source": "inferred"}))).is_ok()
        );
    }
}
