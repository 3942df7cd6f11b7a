//! Where each element of each OpenAPI document comes from.
//!
//! `tests/stated-facts.yaml`, next to this file, lists what the vendors'
//! public documentation states (the fact sheets' [S] facts, with their source
//! ids). This test fails when
//! - a stated fact is not in its document exactly (a path's casing, a
//!   field's name, type or required-ness, an enum's values, the token URL,
//!   a scope, the 401 challenge), or
//! - an element no fact states — a server, security scheme or flow, an
//!   operation, a parameter, a request body, a media type, a response, a
//!   header, a schema or a schema property — carries no
//!   `x-m2m-source: inferred` with a one-line `x-m2m-reason`, on itself or
//!   on an element that contains it. A stated element resets that: an
//!   invented field inside a stated body needs its own marker.
//!
//! Markers on a `$ref`'d component count wherever it is used; every
//! component is also checked on its own, used or not.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

const MARKER: &str = "x-m2m-source";
const REASON: &str = "x-m2m-reason";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `~` and `/` escaped for a JSON pointer token.
fn token(text: &str) -> String {
    text.replace('~', "~0").replace('/', "~1")
}

/// The pointer a `$ref` at `pointer` leads to (itself without one).
fn target(spec: &Value, pointer: &str) -> String {
    let mut pointer = pointer.to_owned();
    for _ in 0..32 {
        match spec
            .pointer(&pointer)
            .and_then(|node| node.get("$ref"))
            .and_then(Value::as_str)
        {
            Some(reference) => {
                pointer = reference
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("non-local $ref {reference}"))
                    .to_owned()
            }
            None => return pointer,
        }
    }
    panic!("$ref cycle at {pointer}");
}

fn node<'a>(spec: &'a Value, pointer: &str) -> &'a Value {
    spec.pointer(pointer).unwrap_or(&Value::Null)
}

// ---------------------------------------------------------------- the facts

/// Checks the facts of one document; returns the problems and the pointers
/// of the elements they state.
fn check_facts(spec: &Value, facts: &[Value]) -> (Vec<String>, BTreeSet<String>) {
    let mut problems = Vec::new();
    let mut stated = BTreeSet::new();
    for fact in facts {
        let source = fact["source"].as_str().unwrap_or("?");
        let mut fail = |what: String| problems.push(format!("[{source}] {what}"));
        let operation = fact["operation"].as_str().map(|text| {
            let (method, path) = text.split_once(' ').expect("`METHOD /path`");
            (
                text,
                format!("/paths/{}/{}", token(path), method.to_lowercase()),
            )
        });
        if let Some((text, pointer)) = &operation {
            if spec.pointer(pointer).is_none() {
                fail(format!(
                    "operation {text} is missing (paths and casing as documented)"
                ));
                continue;
            }
            stated.insert(pointer.clone());
        }
        let operation_pointer = operation.as_ref().map(|(_, p)| p.as_str());
        let body_schema = operation_pointer.map(|op| {
            let body = target(spec, &format!("{op}/requestBody"));
            target(spec, &format!("{body}/content/application~1json/schema"))
        });

        if let (Some(expected), Some(op)) = (fact.get("parameter"), operation_pointer) {
            let name = expected["name"].as_str().unwrap();
            let path_item = op.rsplit_once('/').unwrap().0;
            let found = [
                format!("{op}/parameters"),
                format!("{path_item}/parameters"),
            ]
            .iter()
            .flat_map(|list| {
                let count = node(spec, list).as_array().map_or(0, Vec::len);
                (0..count).map(move |i| format!("{list}/{i}"))
            })
            .map(|raw| (raw.clone(), target(spec, &raw)))
            .find(|(_, resolved)| {
                node(spec, resolved)["name"] == name && node(spec, resolved)["in"] == expected["in"]
            });
            match found {
                None => fail(format!(
                    "{op}: parameter {name} in {} is missing",
                    expected["in"]
                )),
                Some((raw, resolved)) => {
                    let parameter = node(spec, &resolved);
                    let required = parameter["required"].as_bool().unwrap_or(false);
                    if Some(required) != expected["required"].as_bool() {
                        fail(format!("parameter {name}: required is {required}"));
                    }
                    let schema = node(spec, &target(spec, &format!("{resolved}/schema")));
                    if schema["type"] != expected["type"] {
                        fail(format!("parameter {name}: type is {}", schema["type"]));
                    }
                    stated.insert(target(spec, &format!("{resolved}/schema")));
                    stated.insert(raw);
                    stated.insert(resolved);
                }
            }
        }

        if let (Some(expected), Some(op), Some(schema_pointer)) =
            (fact.get("body"), operation_pointer, &body_schema)
        {
            let body = target(spec, &format!("{op}/requestBody"));
            let schema = node(spec, schema_pointer);
            if schema.is_null() {
                fail(format!("{op}: no application/json request body"));
                continue;
            }
            stated.insert(body);
            stated.insert(schema_pointer.clone());
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let expected_required: BTreeSet<&str> = expected["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if required != expected_required {
                fail(format!(
                    "{op}: required fields are {required:?}, stated {expected_required:?}"
                ));
            }
            for (field, kind) in expected["fields"].as_object().into_iter().flatten() {
                let raw = format!("{schema_pointer}/properties/{}", token(field));
                if spec.pointer(&raw).is_none() {
                    fail(format!("{op}: body field {field} is missing"));
                    continue;
                }
                let resolved = target(spec, &raw);
                if node(spec, &resolved)["type"] != *kind {
                    fail(format!("{op}: body field {field} is not of type {kind}"));
                }
                stated.insert(raw);
                stated.insert(resolved);
            }
        }

        for (key, exact) in [("enum", true), ("enum_contains", false)] {
            let (Some(values), Some(schema)) = (fact.get(key), &body_schema) else {
                continue;
            };
            let wanted: BTreeSet<&str> = values
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let enums = enums_under(spec, schema, &mut BTreeSet::new());
            let found = enums.iter().find(|(_, values)| {
                if exact {
                    values.iter().map(String::as_str).eq(wanted.iter().copied())
                } else {
                    wanted.iter().all(|w| values.contains(*w))
                }
            });
            match found {
                // An enum stated whole is a stated element.
                Some((pointer, _)) if exact => {
                    stated.insert(pointer.clone());
                }
                Some(_) => {}
                None => {
                    let found: Vec<_> = enums.iter().map(|(_, values)| values).collect();
                    fail(format!(
                        "{}: no enum in the body with {wanted:?} (found {found:?})",
                        operation_pointer.unwrap()
                    ));
                }
            }
        }

        if let (Some(words), Some(op)) = (fact.get("description_mentions"), operation_pointer) {
            let description = node(spec, op)["description"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            for word in words.as_array().unwrap().iter().filter_map(Value::as_str) {
                if !description.contains(&word.to_lowercase()) {
                    fail(format!("{op}: the description does not mention {word:?}"));
                }
            }
        }

        if let Some(words) = fact.get("info_mentions") {
            let description = spec["info"]["description"].as_str().unwrap_or_default();
            for word in words.as_array().unwrap().iter().filter_map(Value::as_str) {
                if !description.contains(word) {
                    fail(format!("info.description does not mention {word:?}"));
                }
            }
        }

        if let Some(expected) = fact.get("every_operation") {
            let status = expected["status"].as_u64().unwrap().to_string();
            let header = expected["header"].as_str().unwrap();
            let example = expected["example_contains"].as_str().unwrap();
            for op in operation_pointers(spec) {
                let response = target(spec, &format!("{op}/responses/{status}"));
                let header_pointer = target(spec, &format!("{response}/headers/{}", token(header)));
                let declared = node(spec, &header_pointer);
                let shows = [
                    &declared["example"],
                    &declared["schema"]["example"],
                    &declared["description"],
                ]
                .iter()
                .any(|text| text.as_str().is_some_and(|t| t.contains(example)));
                if node(spec, &response).is_null() || declared.is_null() || !shows {
                    fail(format!("{op}: no {status} with {header} showing {example}"));
                    continue;
                }
                stated.insert(target(spec, &format!("{header_pointer}/schema")));
                stated.insert(response);
                stated.insert(header_pointer);
            }
        }

        if let Some(expected) = fact.get("security") {
            let name = expected["scheme"].as_str().unwrap();
            let pointer = format!("/components/securitySchemes/{}", token(name));
            let scheme = node(spec, &pointer);
            if scheme.is_null() {
                fail(format!("security scheme {name} is missing"));
                continue;
            }
            if let Some(kind) = expected.get("type") {
                if scheme["type"] != *kind {
                    fail(format!("security scheme {name} is not of type {kind}"));
                }
                stated.insert(pointer.clone());
            }
            let flows = scheme["flows"].as_object().cloned().unwrap_or_default();
            let flow = match expected["flow"].as_str() {
                Some(flow) => flows.get(flow).cloned().unwrap_or(Value::Null),
                None => flows.values().next().cloned().unwrap_or(Value::Null),
            };
            if flow.is_null() {
                fail(format!(
                    "security scheme {name} has no {} flow",
                    expected["flow"]
                ));
                continue;
            }
            if let Some(url) = expected.get("token_url")
                && flow["tokenUrl"] != *url
            {
                fail(format!(
                    "security scheme {name}: tokenUrl is {}",
                    flow["tokenUrl"]
                ));
            }
            for (scope, description) in expected["scopes"].as_object().into_iter().flatten() {
                match flow["scopes"].get(scope) {
                    None => fail(format!("security scheme {name}: scope {scope} is missing")),
                    Some(declared) if !description.is_null() && declared != description => fail(
                        format!("security scheme {name}: scope {scope} is described {declared}"),
                    ),
                    Some(_) => {}
                }
            }
        }

        if let Some(name) = fact.get("security_required").and_then(Value::as_str) {
            let required = spec["security"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|requirement| requirement.get(name).is_some());
            if !required {
                fail(format!("the top-level security does not require {name}"));
            }
        }
    }
    (problems, stated)
}

/// Every enum (its pointer and values) in the schema at `pointer` and below.
fn enums_under(
    spec: &Value,
    pointer: &str,
    seen: &mut BTreeSet<String>,
) -> Vec<(String, BTreeSet<String>)> {
    let pointer = target(spec, pointer);
    if !seen.insert(pointer.clone()) {
        return Vec::new();
    }
    let schema = node(spec, &pointer);
    let mut found = Vec::new();
    if let Some(values) = schema["enum"].as_array() {
        let values = values.iter().filter_map(Value::as_str).map(str::to_owned);
        found.push((pointer.clone(), values.collect()));
    }
    for name in schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        found.extend(enums_under(
            spec,
            &format!("{pointer}/properties/{}", token(name)),
            seen,
        ));
    }
    if schema.get("items").is_some() {
        found.extend(enums_under(spec, &format!("{pointer}/items"), seen));
    }
    found
}

fn operation_pointers(spec: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if item.get(method).is_some() {
                found.push(format!("/paths/{}/{method}", token(path)));
            }
        }
    }
    found
}

// -------------------------------------------------------------- the markers

/// Walks every element and records those that lack a marker.
struct Walk<'a> {
    spec: &'a Value,
    stated: &'a BTreeSet<String>,
    visited: BTreeSet<(String, bool)>,
    problems: Vec<String>,
}

impl Walk<'_> {
    /// Visits the element at `pointer` (following a `$ref`); `covered` when
    /// an element containing it is marked inferred.
    fn element(&mut self, pointer: &str, covered: bool, children: fn(&mut Self, &str, bool)) {
        let resolved = target(self.spec, pointer);
        if !self.visited.insert((resolved.clone(), covered)) {
            return;
        }
        let (raw, node) = (node(self.spec, pointer), node(self.spec, &resolved));
        let marker = raw.get(MARKER).or_else(|| node.get(MARKER));
        let reason = raw.get(REASON).or_else(|| node.get(REASON));
        let stated = self.stated.contains(pointer) || self.stated.contains(&resolved);
        let covered = match marker.and_then(Value::as_str) {
            Some("inferred") => {
                let one_line = reason
                    .and_then(Value::as_str)
                    .is_some_and(|r| !r.trim().is_empty() && !r.trim().contains('\n'));
                if !one_line {
                    self.problems.push(format!(
                        "{resolved}: `{MARKER}: inferred` without a one-line `{REASON}`"
                    ));
                }
                if stated {
                    self.problems.push(format!(
                        "{resolved}: stated by the vendor, but marked inferred"
                    ));
                }
                true
            }
            Some(other) => {
                self.problems.push(format!(
                    "{resolved}: unknown {MARKER} {other:?} (only `inferred`)"
                ));
                covered
            }
            None if stated => false,
            None if covered => true,
            None => {
                self.problems.push(format!(
                    "{resolved}: no fact states it and it is not marked `{MARKER}: inferred`"
                ));
                false
            }
        };
        children(self, &resolved, covered);
    }

    fn each(&mut self, list: &str, covered: bool, children: fn(&mut Self, &str, bool)) {
        match node(self.spec, list) {
            Value::Array(items) => {
                for index in 0..items.len() {
                    self.element(&format!("{list}/{index}"), covered, children);
                }
            }
            Value::Object(entries) => {
                let keys: Vec<String> = entries
                    .keys()
                    .filter(|k| !k.starts_with("x-"))
                    .cloned()
                    .collect();
                for key in keys {
                    self.element(&format!("{list}/{}", token(&key)), covered, children);
                }
            }
            _ => {}
        }
    }

    fn document(&mut self) {
        self.each("/servers", false, |_, _, _| {});
        self.each(
            "/components/securitySchemes",
            false,
            |walk, scheme, covered| {
                walk.each(&format!("{scheme}/flows"), covered, |_, _, _| {});
            },
        );
        for operation in operation_pointers(self.spec) {
            self.element(&operation, false, Self::operation);
        }
        let path_items: Vec<String> = self.spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, _)| format!("/paths/{}/parameters", token(path)))
            .collect();
        for list in path_items {
            self.each(&list, false, Self::schema_holder);
        }
        self.each("/components/schemas", false, Self::schema);
        self.each("/components/parameters", false, Self::schema_holder);
        self.each("/components/headers", false, Self::schema_holder);
        self.each("/components/requestBodies", false, Self::content_holder);
        self.each("/components/responses", false, Self::response);
    }

    fn operation(&mut self, pointer: &str, covered: bool) {
        self.each(
            &format!("{pointer}/parameters"),
            covered,
            Self::schema_holder,
        );
        if node(self.spec, &format!("{pointer}/requestBody")).is_object() {
            self.element(
                &format!("{pointer}/requestBody"),
                covered,
                Self::content_holder,
            );
        }
        self.each(&format!("{pointer}/responses"), covered, Self::response);
    }

    fn response(&mut self, pointer: &str, covered: bool) {
        self.each(&format!("{pointer}/headers"), covered, Self::schema_holder);
        Self::content_holder(self, pointer, covered);
    }

    fn content_holder(&mut self, pointer: &str, covered: bool) {
        self.each(&format!("{pointer}/content"), covered, Self::schema_holder);
    }

    /// A parameter, header or media type: its schema is part of it.
    fn schema_holder(&mut self, pointer: &str, covered: bool) {
        let schema = format!("{pointer}/schema");
        if node(self.spec, &schema).is_object() {
            self.element(&schema, covered, Self::schema);
        }
    }

    fn schema(&mut self, pointer: &str, covered: bool) {
        let properties = format!("{pointer}/properties");
        self.each(&properties, covered, Self::schema);
        for key in ["items", "additionalProperties"] {
            let child = format!("{pointer}/{key}");
            if node(self.spec, &child).is_object() {
                self.element(&child, covered, Self::schema);
            }
        }
    }
}

// ------------------------------------------------------------------- tests

fn documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = fs::read_dir(manifest_dir().join("openapi"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                yaml(&path),
            )
        })
        .collect()
}

/// Every problem of `spec` against `facts`.
fn provenance_problems(spec: &Value, facts: &[Value]) -> Vec<String> {
    let (mut problems, stated) = check_facts(spec, facts);
    let mut walk = Walk {
        spec,
        stated: &stated,
        visited: BTreeSet::new(),
        problems: Vec::new(),
    };
    walk.document();
    problems.extend(walk.problems);
    problems
}

#[test]
fn every_stated_fact_is_in_its_document_and_every_other_element_is_marked_inferred() {
    let facts = yaml(&manifest_dir().join("tests/stated-facts.yaml"));
    let documents = documents();
    assert!(!documents.is_empty());
    let mut report = Vec::new();
    for (file, spec) in &documents {
        let facts = facts[file.as_str()]
            .as_array()
            .unwrap_or_else(|| panic!("tests/stated-facts.yaml has no list for {file}"));
        for problem in provenance_problems(spec, facts) {
            report.push(format!("{file}: {problem}"));
        }
    }
    assert!(
        report.is_empty(),
        "{} problems:\n{}",
        report.len(),
        report.join("\n")
    );
}

/// The check itself: an invented field in a stated body, a stated field
/// gone, and a field renamed by case are each named.
#[test]
fn the_check_names_invented_missing_and_misspelled_elements() {
    let facts: Value = serde_norway::from_str(
        "- source: C2\n  operation: POST /api/Organisation\n  body: {required: [name], fields: {name: string, cssUrl: string}}\n",
    )
    .unwrap();
    let facts = facts.as_array().unwrap();
    let document = |properties: Value| {
        serde_json::json!({
            "openapi": "3.0.3",
            "paths": {"/api/Organisation": {"post": {
                "operationId": "createOrganisation",
                "requestBody": {"content": {"application/json": {
                    "x-m2m-source": "inferred", "x-m2m-reason": "media type not shown",
                    "schema": {"type": "object", "required": ["name"], "properties": properties}
                }}},
                "responses": {"201": {"description": "created",
                    "x-m2m-source": "inferred", "x-m2m-reason": "response not shown"}}
            }}}
        })
    };
    let good =
        document(serde_json::json!({"name": {"type": "string"}, "cssUrl": {"type": "string"}}));
    assert_eq!(provenance_problems(&good, facts), Vec::<String>::new());

    let invented = document(serde_json::json!({
        "name": {"type": "string"}, "cssUrl": {"type": "string"}, "website": {"type": "string"}
    }));
    let problems = provenance_problems(&invented, facts);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("properties/website: no fact states it"),
        "{problems:?}"
    );

    let renamed =
        document(serde_json::json!({"name": {"type": "string"}, "cssURL": {"type": "string"}}));
    let problems = provenance_problems(&renamed, facts);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("body field cssUrl is missing"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("properties/cssURL: no fact states it"),
        "{problems:?}"
    );
}
