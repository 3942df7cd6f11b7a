//! Calling any generated operation by its `operationId` with arguments as
//! text: what `m2m call` does.
//!
//! The OpenAPI document drives what a user sees: the operations, their
//! parameters and body fields ([`Operation::help`]), and the checks made
//! before anything is sent ([`Operation::prepare`]): every mistake is
//! refused with one line naming the parameter or field as the document
//! spells it. The request itself is built and sent by the generated client
//! (build.rs writes, per operation, the builder calls with each value typed
//! as the builder takes it), so it is exactly what the typed client sends,
//! through the same auth hooks; [`Call::send`] returns the answer as the
//! server sent it.

mod help;
mod schema;
mod spec;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use spec::Operation;

use m2m::apis::exchange::{self, Exchange, Tap};
use m2m::auth::{ApiCallError, ApiCallErrorKind, Auth, AuthError};

use crate::dispatch::Api;
use spec::Document;

/// Why a call was refused or got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallFailure {
    /// The input does not fit the operation: nothing was sent.
    #[error("{0}")]
    Refused(String),
    /// No token could be had: nothing was sent.
    #[error("no token: {0}")]
    NoToken(AuthError),
    /// The request was sent but no answer could be read.
    #[error("{method} {url} → {reason}")]
    Transport {
        /// The method sent.
        method: String,
        /// The URL, query secrets redacted.
        url: String,
        /// What went wrong (`timed out after 15 s`).
        reason: String,
    },
    /// Anything else the generated client reported.
    #[error("{0}")]
    Other(String),
}

/// Why an operation name was not found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LookupError {
    /// No operation of that name (in the API, or in any).
    Unknown {
        /// The API searched, `None` for all of them.
        api: Option<Api>,
        /// The name asked for.
        name: String,
        /// The nearest operation name, if one is near.
        suggestion: Option<String>,
    },
    /// The operation belongs to another API than the one asked for.
    OtherApi {
        /// The operation.
        operation_id: String,
        /// The API it belongs to.
        owner: Api,
        /// The API asked for.
        api: Api,
    },
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown {
                api,
                name,
                suggestion,
            } => {
                match api {
                    Some(api) => write!(f, "{} has no operation {name:?}", api.name())?,
                    None => write!(f, "no API has an operation {name:?}")?,
                }
                if let Some(suggestion) = suggestion {
                    write!(f, "; did you mean {suggestion}?")?;
                }
                write!(f, " (`m2m call --list` lists them)")
            }
            Self::OtherApi {
                operation_id,
                owner,
                api,
            } => write!(
                f,
                "{operation_id} is an operation of {}, not of {}",
                owner.name(),
                api.name()
            ),
        }
    }
}

impl std::error::Error for LookupError {}

impl Api {
    /// The operations of this API, in document order.
    pub fn operations(self) -> &'static [Operation] {
        &Document::of(self).operations
    }

    /// The operation `name` of this API: its `operationId`, or the same
    /// but for case, `-` and `_` (`post_validation_message`).
    pub fn operation(self, name: &str) -> Option<&'static Operation> {
        let operations = self.operations();
        operations
            .iter()
            .find(|op| op.operation_id == name)
            .or_else(|| {
                operations
                    .iter()
                    .find(|op| same_name(&op.operation_id, name))
            })
    }
}

/// The operation `name`: of `api` when the client's API is known, else of
/// any API.
pub fn lookup(api: Option<Api>, name: &str) -> Result<&'static Operation, LookupError> {
    if let Some(api) = api {
        if let Some(operation) = api.operation(name) {
            return Ok(operation);
        }
        if let Some(operation) = Api::ALL.iter().find_map(|other| other.operation(name)) {
            return Err(LookupError::OtherApi {
                operation_id: operation.operation_id.clone(),
                owner: operation.api,
                api,
            });
        }
    } else if let Some(operation) = Api::ALL.iter().find_map(|other| other.operation(name)) {
        return Ok(operation);
    }
    let searched: Vec<Api> = api.map_or_else(|| Api::ALL.to_vec(), |api| vec![api]);
    let names = searched
        .iter()
        .flat_map(|api| api.operations())
        .map(|op| op.operation_id.as_str());
    Err(LookupError::Unknown {
        api,
        name: name.to_owned(),
        suggestion: suggest(name, names).map(str::to_owned),
    })
}

/// The request body as text, and where it came from (for messages).
#[derive(Debug, Clone, Copy)]
pub struct BodyText<'a> {
    /// `body.json`, `standard input`.
    pub source: &'a str,
    /// The JSON text.
    pub text: &'a str,
}

/// A call checked against the document, ready to send.
#[derive(Debug, Clone)]
pub struct Call {
    operation: &'static Operation,
    input: Input,
}

/// The checked arguments, as the generated dispatch code reads them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Input {
    /// Parameters by the document's name.
    params: Vec<(String, String)>,
    body: Option<Value>,
}

impl Operation {
    /// Checks `params` (`name=value`, names as in the document; a top-level
    /// body field may be given so when there is no `body`) and `body`
    /// against the document. Refuses, naming the parameter or field, a
    /// missing required parameter or body, an unknown name (with the nearest
    /// known one), a `--param` for a field of the given body, invalid JSON,
    /// and a value of the wrong type, format, pattern or enum.
    pub fn prepare(
        &'static self,
        params: &[(String, String)],
        body: Option<BodyText<'_>>,
    ) -> Result<Call, CallFailure> {
        let doc = Document::of(self.api);
        let refuse = |message: String| Err(CallFailure::Refused(message));
        let op = &self.operation_id;
        let body_fields: Vec<&str> = self
            .body
            .as_ref()
            .map(|b| schema::top_level_names(doc, &b.schema))
            .unwrap_or_default();
        let mut input = Input::default();
        let mut fields_from_params = Map::new();
        // Names first, values after: an unknown name is the likelier
        // mistake, and its message lists what the operation takes.
        let mut named = Vec::new();
        for (name, value) in params {
            if params.iter().filter(|(other, _)| other == name).count() > 1 {
                return refuse(format!("--param {name} is given more than once"));
            }
            let parameter = self
                .parameters
                .iter()
                .find(|p| p.name == *name)
                .or_else(|| self.parameters.iter().find(|p| same_name(&p.name, name)));
            if let Some(parameter) = parameter {
                named.push((parameter, value));
                continue;
            }
            let field = body_fields.iter().find(|field| **field == name.as_str());
            match (field, &self.body, body) {
                (Some(field), Some(_), Some(given)) => {
                    return refuse(format!(
                        "{field} is a field of the request body of {op}: set it in {} or leave --body out, not both",
                        given.source
                    ));
                }
                (Some(field), Some(request_body), None) => {
                    let property =
                        schema::property(doc, &request_body.schema, field).unwrap_or(&Value::Null);
                    fields_from_params.insert(
                        (*field).to_owned(),
                        schema::value_from_text(doc, property, value),
                    );
                }
                _ => {
                    let known = self
                        .parameters
                        .iter()
                        .map(|p| p.name.as_str())
                        .chain(body_fields.iter().copied());
                    let hint = suggest(name, known)
                        .map(|near| format!("; did you mean {near}?"))
                        .unwrap_or_default();
                    return refuse(format!(
                        "{op} has no parameter {name:?}{hint} ({})",
                        self.takes()
                    ));
                }
            }
        }
        for (parameter, value) in named {
            if input.params.iter().any(|(name, _)| *name == parameter.name) {
                return refuse(format!(
                    "--param {} is given more than once",
                    parameter.name
                ));
            }
            let typed = schema::value_from_text(doc, &parameter.schema, value);
            schema::check(
                doc,
                &parameter.schema,
                &typed,
                &format!("parameter {}", parameter.name),
            )
            .map_err(CallFailure::Refused)?;
            input.params.push((parameter.name.clone(), value.clone()));
        }
        if let Some(missing) = self
            .parameters
            .iter()
            .find(|p| p.required && !input.params.iter().any(|(name, _)| *name == p.name))
        {
            return refuse(format!(
                "{op} needs the {} parameter {} ({}): add --param {}=VALUE",
                missing.location.name(),
                missing.name,
                schema::describe(doc, &missing.schema),
                missing.name
            ));
        }
        input.body = match (&self.body, body) {
            (None, Some(given)) => {
                return refuse(format!(
                    "{op} takes no request body, but --body {} was given",
                    given.source
                ));
            }
            (None, None) => None,
            (Some(_), Some(given)) => Some(serde_json::from_str(given.text).map_err(|e| {
                CallFailure::Refused(format!(
                    "the request body in {} is not valid JSON: {e}",
                    given.source
                ))
            })?),
            (Some(_), None) if !fields_from_params.is_empty() => {
                Some(Value::Object(fields_from_params))
            }
            (Some(request_body), None) if request_body.required => {
                return refuse(format!(
                    "{op} needs a request body: --body FILE (or - for standard input), or --param for each of its fields ({}); `m2m call CLIENT {op} --help` shows them",
                    body_fields.join(", ")
                ));
            }
            (Some(_), None) => None,
        };
        if let (Some(request_body), Some(value)) = (&self.body, &input.body) {
            schema::check(doc, &request_body.schema, value, "the request body")
                .map_err(CallFailure::Refused)?;
        }
        Ok(Call {
            operation: self,
            input,
        })
    }

    /// What `--param` takes, for messages: `it takes organisationId; body
    /// fields a, b` or `it takes no parameters`.
    fn takes(&self) -> String {
        let doc = Document::of(self.api);
        let parameters: Vec<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
        let fields = self
            .body
            .as_ref()
            .map(|b| schema::top_level_names(doc, &b.schema))
            .unwrap_or_default();
        match (parameters.is_empty(), fields.is_empty()) {
            (true, true) => "it takes no parameters".to_owned(),
            (false, true) => format!("it takes: {}", parameters.join(", ")),
            (true, false) => format!("it takes the body fields: {}", fields.join(", ")),
            (false, false) => format!(
                "it takes: {}; and the body fields: {}",
                parameters.join(", "),
                fields.join(", ")
            ),
        }
    }

    /// An example request body built from the document's examples.
    #[cfg(test)]
    pub fn example_body(&self) -> Option<Value> {
        let doc = Document::of(self.api);
        self.body.as_ref().map(|b| schema::example(doc, &b.schema))
    }

    /// The type of `parameter` in a few words (`string (uuid)`).
    #[cfg(test)]
    pub fn describe(&self, parameter: &spec::Parameter) -> String {
        schema::describe(Document::of(self.api), &parameter.schema)
    }

    /// progenitor's name for this operation's method.
    fn generated_method(&self) -> Option<&'static str> {
        self.api
            .generated_methods()
            .iter()
            .copied()
            .find(|method| same_name(method, &self.operation_id))
    }
}

impl Call {
    /// Sends the call to the API at `base_url` through the generated
    /// client, with a token from `auth` (renewed and sent again once if the
    /// API rejects it as `invalid_token`), held to the limits of its
    /// [`ApiSettings`](m2m::auth::ApiSettings) (`api_timeout_secs`,
    /// `max_response_bytes`). A 4xx or 5xx answer is an [`Exchange`] like a
    /// 2xx one.
    pub async fn send(&self, base_url: &str, auth: &Auth) -> Result<Exchange, CallFailure> {
        let method = self.operation.generated_method().ok_or_else(|| {
            CallFailure::Other(format!(
                "{} has no generated method",
                self.operation.operation_id
            ))
        })?;
        // Every value checked against the document must reach a setter of
        // the generated builder: a parameter progenitor named otherwise
        // would be dropped without a word.
        let setters = self.operation.api.generated_setters(method);
        let unmatched = self
            .input
            .params
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(self.input.body.as_ref().map(|_| "body"))
            .find(|name| !setters.iter().any(|setter| same_name(setter, name)));
        if let Some(name) = unmatched {
            return Err(CallFailure::Other(format!(
                "the generated client of {} takes no {name}: nothing was sent",
                self.operation.operation_id
            )));
        }
        let settings = auth.api_settings();
        let http = settings
            .http_client()
            .map_err(|e| CallFailure::Other(format!("cannot set up the HTTP client: {e}")))?;
        let base_url = base_url.trim_end_matches('/');
        let (result, tap) = exchange::tapped(self.operation.api.send_generated(
            base_url,
            http,
            auth,
            method,
            &self.input,
        ))
        .await;
        match result? {
            Sent::Answered => tap
                .exchange
                .ok_or_else(|| CallFailure::Other("the call ended without an answer".to_owned())),
            Sent::Stopped(stopped) => Err(transport_failure(tap, stopped_reason(&stopped))),
            Sent::Unanswered(error) => Err(transport_failure(
                tap,
                transport_reason(&error, settings.timeout),
            )),
        }
    }
}

/// The failure of a call that got no answer, for `reason`, with the
/// attempt it ended on.
fn transport_failure(tap: Tap, mut reason: String) -> CallFailure {
    let (method, url) = tap.request.unwrap_or_default();
    reason.push_str(if tap.attempts >= 2 {
        " (attempt 2 of 2, after a token renewal)"
    } else {
        " (attempt 1 of 1)"
    });
    CallFailure::Transport {
        method,
        url,
        reason,
    }
}

impl Input {
    /// The parameter the generated builder's setter `setter` takes
    /// (progenitor's snake_case name), typed as the builder wants it.
    pub(crate) fn param<T: DeserializeOwned>(
        &self,
        setter: &str,
    ) -> Result<Option<T>, CallFailure> {
        let Some((name, text)) = self.params.iter().find(|(name, _)| same_name(name, setter))
        else {
            return Ok(None);
        };
        serde_json::from_value::<T>(Value::String(text.clone()))
            .or_else(|as_string| serde_json::from_str::<T>(text).map_err(|_| as_string))
            .map(Some)
            .map_err(|why| {
                CallFailure::Refused(format!("parameter {name}: {text:?} is not valid: {why}"))
            })
    }

    /// The body, typed as the generated builder takes it.
    pub(crate) fn body<T: DeserializeOwned>(&self) -> Result<Option<T>, CallFailure> {
        let Some(body) = &self.body else {
            return Ok(None);
        };
        serde_path_to_error::deserialize(body)
            .map(Some)
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                CallFailure::Refused(if path == "." {
                    format!("the request body does not fit: {inner}")
                } else {
                    format!("the request body field {path} does not fit: {inner}")
                })
            })
    }
}

/// How a generated call ended, when it was sent.
#[derive(Debug)]
pub(crate) enum Sent {
    /// An answer arrived, whatever its status: the tap has it.
    Answered,
    /// No answer could be read.
    Unanswered(reqwest::Error),
    /// m2m stopped the call: a limit of the handle's
    /// [`ApiSettings`](m2m::auth::ApiSettings) was hit, or the API keeps
    /// rejecting fresh tokens.
    Stopped(Box<ApiCallError>),
}

/// Turns what the generated builder's `send` returned into the call's
/// outcome.
pub(crate) fn finish<T, E>(
    auth: &Auth,
    result: Result<progenitor_client::ResponseValue<T>, progenitor_client::Error<E>>,
) -> Result<Sent, CallFailure> {
    use progenitor_client::Error;
    match result {
        Ok(_) => Ok(Sent::Answered),
        Err(Error::InvalidRequest(message)) => Err(CallFailure::Refused(message)),
        Err(error @ Error::Custom(_)) => Err(match auth.error_of(&error) {
            Some(AuthError::ApiCall(stopped)) => return Ok(Sent::Stopped(stopped)),
            Some(auth_error) => CallFailure::NoToken(auth_error),
            None => match error {
                Error::Custom(message) => CallFailure::Other(message),
                _ => CallFailure::Other("no token".to_owned()),
            },
        }),
        Err(Error::CommunicationError(error)) => Ok(Sent::Unanswered(error)),
        Err(_) => Ok(Sent::Answered),
    }
}

/// Why m2m stopped a call, as the error line says it after `METHOD URL →`:
/// `timed out after 30 s` (the time limit is `api_timeout_secs`), the size
/// limit, the rejected tokens.
fn stopped_reason(stopped: &ApiCallError) -> String {
    match stopped.kind {
        ApiCallErrorKind::TimedOut { limit } => {
            format!(
                "timed out after {} s, the api_timeout_secs limit",
                limit.as_secs_f64()
            )
        }
        _ => stopped.to_string(),
    }
}

/// `timed out after 15 s`, `cannot connect: …`: the error chain without
/// the URL (the caller shows it once).
fn transport_reason(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {} s", timeout.as_secs_f64());
    }
    let detail = error_chain(error);
    if error.is_connect() {
        format!("cannot connect: {detail}")
    } else {
        detail
    }
}

/// The causes of `error`, without reqwest's own line (which carries the
/// URL): `connection refused`, `operation timed out`.
fn error_chain(error: &reqwest::Error) -> String {
    let mut chain: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        let text = current.to_string();
        if !chain.contains(&text) {
            chain.push(text);
        }
        source = current.source();
    }
    if chain.is_empty() {
        "no answer".to_owned()
    } else {
        chain.join(": ")
    }
}

/// Whether two names are the same but for case and punctuation
/// (`postValidationMessage` and `post_validation_message`,
/// `Idempotency-Key` and `idempotency_key`): how progenitor names methods
/// and setters after the document.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    let loose = |name: &str| -> String {
        name.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    loose(a) == loose(b)
}

/// The name among `known` nearest to `name` (a typo, other case or
/// spelling: `listOrganizations` → `listOrganisations`), if one is near.
pub(crate) fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = name.to_lowercase();
    known
        .into_iter()
        .map(|candidate| {
            let score = strsim::normalized_damerau_levenshtein(&wanted, &candidate.to_lowercase());
            (candidate, score)
        })
        .filter(|(_, score)| *score >= 0.7)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(candidate, _)| candidate)
}

#[cfg(test)]
mod tests;
