//! What `m2m call` needs of JSON Schema, for the OpenAPI 3.0 subset the
//! documents use: a one-line description of a type, the fields of a body,
//! an example body, and a check of a value that names the first problem
//! (wrong type, value outside an enum, pattern or format, missing required
//! field, unknown field with the nearest known one).
//!
//! Not checked (the server's business, and the typed client does not check
//! them either): numeric bounds, string lengths, `uniqueItems`.

use serde_json::{Map, Value};

use super::spec::Document;
use super::suggest;

/// Fields are listed and checked this deep at most (recursive schemas).
const MAX_DEPTH: usize = 8;

/// One field of a body, for help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// `name`, `address.street`, `items[].id`.
    pub path: String,
    /// The type in a few words (`string (uuid)`, `one of: A, B`).
    pub kind: String,
    /// Whether its object needs it.
    pub required: bool,
    /// The document's description.
    pub description: String,
}

/// The schema of an object, `allOf` parts merged: its properties in
/// document order, its required names, and whether other names are allowed.
struct ObjectShape<'a> {
    properties: Vec<(&'a String, &'a Value)>,
    required: Vec<&'a str>,
    /// `None`: other names are refused; `Some(schema)`: allowed, as `schema`
    /// (`Value::Bool(true)` for any value).
    additional: Option<&'a Value>,
}

static ANY: Value = Value::Bool(true);

fn object_shape<'a>(doc: &'a Document, schema: &'a Value) -> Option<ObjectShape<'a>> {
    let schema = doc.resolve(schema);
    let mut shape = ObjectShape {
        properties: Vec::new(),
        required: Vec::new(),
        additional: None,
    };
    let mut parts = vec![schema];
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        parts.extend(all.iter().map(|part| doc.resolve(part)));
    }
    let mut is_object = false;
    let mut has_properties = false;
    let mut closed = false;
    for part in parts {
        if part.get("type").and_then(Value::as_str) == Some("object") {
            is_object = true;
        }
        if let Some(properties) = part.get("properties").and_then(Value::as_object) {
            is_object = true;
            has_properties = true;
            for (name, property) in properties {
                if !shape.properties.iter().any(|(known, _)| *known == name) {
                    shape.properties.push((name, property));
                }
            }
        }
        if let Some(required) = part.get("required").and_then(Value::as_array) {
            shape
                .required
                .extend(required.iter().filter_map(Value::as_str));
        }
        match part.get("additionalProperties") {
            Some(Value::Bool(true)) => shape.additional = Some(&ANY),
            Some(Value::Bool(false)) => closed = true,
            Some(schema @ Value::Object(_)) => {
                is_object = true;
                shape.additional = Some(schema);
            }
            _ => {}
        }
    }
    if !is_object {
        return None;
    }
    if !has_properties && shape.additional.is_none() && !closed {
        // A free-form object: anything goes.
        shape.additional = Some(&ANY);
    }
    Some(shape)
}

/// The type of `schema` in a few words.
pub fn describe(doc: &Document, schema: &Value) -> String {
    let resolved = doc.resolve(schema);
    if let Some(values) = resolved.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(plain).collect();
        return format!("one of: {}", values.join(", "));
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(choices) = resolved.get(combinator).and_then(Value::as_array) {
            let choices: Vec<String> = choices.iter().map(|c| describe(doc, c)).collect();
            return format!("either {}", choices.join(" or "));
        }
    }
    let kind = match resolved.get("type").and_then(Value::as_str) {
        Some("array") => {
            let items = resolved.get("items").unwrap_or(&Value::Null);
            format!("array of {}", describe(doc, items))
        }
        Some(kind) => kind.to_owned(),
        None if object_shape(doc, resolved).is_some() => "object".to_owned(),
        None => "any".to_owned(),
    };
    let mut notes = Vec::new();
    if let Some(format) = resolved.get("format").and_then(Value::as_str) {
        notes.push(format.to_owned());
    }
    if let Some(pattern) = resolved.get("pattern").and_then(Value::as_str) {
        notes.push(format!("pattern {pattern}"));
    }
    if let Some(default) = resolved.get("default") {
        notes.push(format!("default {}", plain(default)));
    }
    if resolved.get("nullable").and_then(Value::as_bool) == Some(true) {
        notes.push("or null".to_owned());
    }
    if notes.is_empty() {
        kind
    } else {
        format!("{kind} ({})", notes.join(", "))
    }
}

/// The fields of the object `schema`, nested ones as dotted paths.
pub fn fields(doc: &Document, schema: &Value) -> Vec<Field> {
    let mut out = Vec::new();
    collect_fields(doc, schema, "", 0, &mut out);
    out
}

fn collect_fields(
    doc: &Document,
    schema: &Value,
    prefix: &str,
    depth: usize,
    out: &mut Vec<Field>,
) {
    if depth >= MAX_DEPTH {
        return;
    }
    let Some(shape) = object_shape(doc, schema) else {
        return;
    };
    for (name, property) in &shape.properties {
        let path = format!("{prefix}{name}");
        let resolved = doc.resolve(property);
        if is_read_only(resolved) {
            continue;
        }
        out.push(Field {
            path: path.clone(),
            kind: describe(doc, property),
            required: shape.required.contains(&name.as_str()),
            description: resolved
                .get("description")
                .or_else(|| property.get("description"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
        collect_fields(doc, property, &format!("{path}."), depth + 1, out);
        if resolved.get("type").and_then(Value::as_str) == Some("array")
            && let Some(items) = resolved.get("items")
        {
            collect_fields(doc, items, &format!("{path}[]."), depth + 1, out);
        }
    }
}

fn is_read_only(schema: &Value) -> bool {
    schema.get("readOnly").and_then(Value::as_bool) == Some(true)
}

/// The top-level field names of the object `schema`.
pub fn top_level_names<'a>(doc: &'a Document, schema: &'a Value) -> Vec<&'a str> {
    object_shape(doc, schema)
        .map(|shape| shape.properties.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default()
}

/// The schema of the top-level field `name` of the object `schema`.
pub fn property<'a>(doc: &'a Document, schema: &'a Value, name: &str) -> Option<&'a Value> {
    object_shape(doc, schema)?
        .properties
        .into_iter()
        .find(|(known, _)| known.as_str() == name)
        .map(|(_, property)| property)
}

/// An example value: the schema's own `example`, else one built from its
/// fields' examples (required fields always, with a stand-in of their type
/// when they have none).
pub fn example(doc: &Document, schema: &Value) -> Value {
    build_example(doc, schema, 0)
}

fn build_example(doc: &Document, schema: &Value, depth: usize) -> Value {
    let resolved = doc.resolve(schema);
    if let Some(example) = schema.get("example").or_else(|| resolved.get("example")) {
        return example.clone();
    }
    if let Some(default) = resolved.get("default") {
        return default.clone();
    }
    if let Some(first) = resolved
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
    {
        return first.clone();
    }
    if depth < MAX_DEPTH
        && let Some(shape) = object_shape(doc, resolved)
    {
        let mut object = Map::new();
        for (name, property) in shape.properties {
            let resolved_property = doc.resolve(property);
            if is_read_only(resolved_property) {
                continue;
            }
            let has_example = property.get("example").is_some()
                || resolved_property.get("example").is_some()
                || object_shape(doc, resolved_property).is_some();
            if shape.required.contains(&name.as_str()) || has_example {
                object.insert(name.clone(), build_example(doc, property, depth + 1));
            }
        }
        return Value::Object(object);
    }
    match resolved.get("type").and_then(Value::as_str) {
        Some("array") if depth < MAX_DEPTH => Value::Array(vec![build_example(
            doc,
            resolved.get("items").unwrap_or(&Value::Null),
            depth + 1,
        )]),
        Some("integer") => Value::from(0),
        Some("number") => Value::from(0.0),
        Some("boolean") => Value::Bool(false),
        Some("string") => Value::String(
            match resolved.get("format").and_then(Value::as_str) {
                Some("uuid") => "00000000-0000-0000-0000-000000000000",
                Some("date") => "2024-01-01",
                Some("date-time") => "2024-01-01T00:00:00Z",
                _ => "string",
            }
            .to_owned(),
        ),
        _ => Value::Null,
    }
}

/// Checks `value` against `schema`; the first problem, naming the field by
/// its path (`amount`, `address.street`, `items[2].id`; `what` for the
/// value itself).
pub fn check(doc: &Document, schema: &Value, value: &Value, what: &str) -> Result<(), String> {
    check_at(doc, schema, value, what, "", 0)
}

fn check_at(
    doc: &Document,
    schema: &Value,
    value: &Value,
    what: &str,
    path: &str,
    depth: usize,
) -> Result<(), String> {
    let resolved = doc.resolve(schema);
    let here = || {
        if path.is_empty() {
            what.to_owned()
        } else {
            format!("{what} field {path}")
        }
    };
    if depth > MAX_DEPTH * 4 {
        return Ok(());
    }
    if value.is_null() {
        return if resolved.get("nullable").and_then(Value::as_bool) == Some(true)
            || resolved.get("type").is_none() && object_shape(doc, resolved).is_none()
        {
            Ok(())
        } else {
            Err(format!("{} must not be null", here()))
        };
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(choices) = resolved.get(combinator).and_then(Value::as_array) {
            let fits = choices
                .iter()
                .any(|choice| check_at(doc, choice, value, what, path, depth + 1).is_ok());
            return if fits {
                Ok(())
            } else {
                Err(format!(
                    "{} is {}, which fits none of: {}",
                    here(),
                    kind_of(value),
                    describe(doc, resolved)
                ))
            };
        }
    }
    if let Some(values) = resolved.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        let allowed: Vec<String> = values.iter().map(plain).collect();
        return Err(format!(
            "{} is {}, not one of: {}",
            here(),
            shown(value),
            allowed.join(", ")
        ));
    }
    let wrong_type = |expected: &str| {
        Err(format!(
            "{} must be {expected}, not {} ({})",
            here(),
            kind_of(value),
            shown(value)
        ))
    };
    match resolved.get("type").and_then(Value::as_str) {
        Some("string") => {
            let Some(text) = value.as_str() else {
                return wrong_type("a string");
            };
            check_string(resolved, text).map_err(|why| format!("{} {why}", here()))?;
        }
        Some("integer") => {
            if !(value.is_i64() || value.is_u64()) {
                return wrong_type("an integer");
            }
            let fits = match resolved.get("format").and_then(Value::as_str) {
                Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                Some("int64") => value.is_i64(),
                _ => true,
            };
            if !fits {
                return Err(format!("{} is out of range for its format", here()));
            }
        }
        Some("number") if !value.is_number() => return wrong_type("a number"),
        Some("boolean") if !value.is_boolean() => return wrong_type("true or false"),
        Some("array") => {
            let Some(items) = value.as_array() else {
                return wrong_type("an array");
            };
            let item_schema = resolved.get("items").unwrap_or(&ANY);
            for (index, item) in items.iter().enumerate() {
                check_at(
                    doc,
                    item_schema,
                    item,
                    what,
                    &format!("{path}[{index}]"),
                    depth + 1,
                )?;
            }
        }
        _ => {}
    }
    if let Some(shape) = object_shape(doc, resolved) {
        let Some(object) = value.as_object() else {
            return wrong_type("an object");
        };
        let known: Vec<&str> = shape.properties.iter().map(|(n, _)| n.as_str()).collect();
        for (name, field) in object {
            let field_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            match shape.properties.iter().find(|(known, _)| *known == name) {
                // An optional field given as null is left out, as the typed
                // client does: nothing is lost.
                Some(_) if field.is_null() && !shape.required.contains(&name.as_str()) => {}
                Some((_, property)) => {
                    check_at(doc, property, field, what, &field_path, depth + 1)?;
                }
                None => match shape.additional {
                    Some(additional) => {
                        check_at(doc, additional, field, what, &field_path, depth + 1)?;
                    }
                    None => {
                        let hint = suggest(name, known.iter().copied())
                            .map(|near| format!("; did you mean {near}?"))
                            .unwrap_or_else(|| format!("; it has: {}", known.join(", ")));
                        return Err(format!("{what} has an unknown field {field_path}{hint}"));
                    }
                },
            }
        }
        for required in &shape.required {
            if !object.contains_key(*required) {
                let field_path = if path.is_empty() {
                    (*required).to_owned()
                } else {
                    format!("{path}.{required}")
                };
                return Err(format!("{what} lacks the required field {field_path}"));
            }
        }
    }
    Ok(())
}

fn check_string(schema: &Value, text: &str) -> Result<(), String> {
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Ok(regex) = regress::Regex::new(pattern)
        && regex.find(text).is_none()
    {
        return Err(format!("{text:?} does not match the pattern {pattern}"));
    }
    let valid = match schema.get("format").and_then(Value::as_str) {
        Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
        Some("date") => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        _ => true,
    };
    if valid {
        Ok(())
    } else {
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        let hint = match format {
            "date" => " (YYYY-MM-DD)",
            "date-time" => " (RFC 3339, such as 2024-06-01T15:04:05Z)",
            _ => "",
        };
        Err(format!("{text:?} is not a valid {format}{hint}"))
    }
}

/// The text of a `--param` turned into the JSON value its schema wants:
/// strings stay strings, numbers, booleans, arrays and objects are parsed.
pub fn value_from_text(doc: &Document, schema: &Value, text: &str) -> Value {
    let resolved = doc.resolve(schema);
    let wants_string = resolved.get("type").and_then(Value::as_str) == Some("string")
        || resolved
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().all(Value::is_string));
    if wants_string {
        return Value::String(text.to_owned());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as a message shows it: short, on one line.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// A value without JSON quotes for strings.
fn plain(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}
