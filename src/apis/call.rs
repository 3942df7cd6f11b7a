//! Calling any generated operation by its `operationId`, with arguments as
//! strings: what `m2m call` does. The argument parsing and typing is the
//! clap code progenitor generates for each API (`<api>::cli`).

use std::sync::{Arc, Mutex};

use progenitor_client::{Error, ResponseValue};
use serde::Serialize;

use super::Api;
use crate::auth::Auth;

/// One operation of one API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The API it belongs to.
    pub api: Api,
    /// Its `operationId`, as the OpenAPI document spells it.
    pub operation_id: String,
    /// Its one-line summary from the OpenAPI document.
    pub summary: String,
}

/// What a call answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallOutcome {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Whether the operation succeeded.
    pub success: bool,
    /// The response body as JSON (`null` for empty bodies), or the error
    /// message when no response could be read.
    pub body: serde_json::Value,
}

/// Why an operation could not be called.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No operation of that API has this `operationId`.
    #[error("{api} has no operation {operation_id:?}; `m2m call --list` lists them")]
    UnknownOperation {
        /// The API.
        api: &'static str,
        /// The requested operation.
        operation_id: String,
    },
    /// A `--param` does not name a parameter of the operation.
    #[error("{0}")]
    BadArguments(String),
    /// The call failed before a response could be read (no token, transport).
    #[error("{0}")]
    Failed(String),
}

impl Api {
    /// The operations of this API.
    pub fn operations(self) -> Vec<Operation> {
        super::dispatch_operations(self)
    }

    /// Calls `operation_id` with `params` (`name=value`; names as in the
    /// OpenAPI document, body fields included) and an optional JSON body
    /// file. Returns the outcome, success or documented error alike.
    pub async fn call(
        self,
        base_url: &str,
        auth: Auth,
        operation_id: &str,
        params: &[(String, String)],
        body_file: Option<&std::path::Path>,
    ) -> Result<CallOutcome, CallError> {
        super::dispatch_call(self, base_url, auth, operation_id, params, body_file).await
    }
}

/// Whether two names are the same but for case, `-` and `_`
/// (`postValidationMessage` and `post_validation_message`).
pub(super) fn same_name(a: &str, b: &str) -> bool {
    let loose = |name: &str| -> String {
        name.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    loose(a) == loose(b)
}

/// Every `operationId` of an OpenAPI document (JSON).
pub(super) fn spec_operation_ids(openapi_json: &str) -> Vec<String> {
    let Ok(spec) = serde_json::from_str::<serde_json::Value>(openapi_json) else {
        return Vec::new();
    };
    spec.get("paths")
        .and_then(|paths| paths.as_object())
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(|item| item.as_object())
        .flat_map(|item| item.values())
        .filter_map(|operation| operation.get("operationId")?.as_str())
        .map(str::to_owned)
        .collect()
}

/// `generated` (progenitor's snake_case name) as the document spells it.
pub(super) fn as_spelled(generated: &str, spelled: &[String]) -> String {
    spelled
        .iter()
        .find(|name| same_name(name, generated))
        .cloned()
        .unwrap_or_else(|| generated.to_owned())
}

/// Turns `name=value` pairs into the argument list of the generated clap
/// command, matching names loosely (`organisationId`, `organisation-id` and
/// `organisation_id` are the same parameter).
pub(super) fn to_args(
    command: &clap::Command,
    params: &[(String, String)],
    body_file: Option<&std::path::Path>,
) -> Result<Vec<String>, CallError> {
    let mut args = vec![command.get_name().to_owned()];
    for (name, value) in params {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long().is_some_and(|long| same_name(long, name)))
            .and_then(|arg| arg.get_long())
            .filter(|long| !long.starts_with("json-body"))
            .ok_or_else(|| {
                let known: Vec<_> = command
                    .get_arguments()
                    .filter_map(|a| a.get_long())
                    .filter(|long| !long.starts_with("json-body"))
                    .collect();
                CallError::BadArguments(format!(
                    "{} has no parameter {name:?}; it takes: {}",
                    command.get_name(),
                    known.join(", ")
                ))
            })?;
        args.push(format!("--{arg}"));
        args.push(value.clone());
    }
    if let Some(file) = body_file {
        args.push("--json-body".to_owned());
        args.push(file.display().to_string());
    }
    Ok(args)
}

/// Collects the generated CLI's output callbacks into a [`CallOutcome`].
#[derive(Default, Clone)]
pub(super) struct Collector(Arc<Mutex<Option<CallOutcome>>>);

impl Collector {
    fn set(&self, outcome: CallOutcome) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }

    pub(super) fn take(&self) -> Option<CallOutcome> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(super) fn success<T: Serialize>(&self, value: &ResponseValue<T>) {
        self.set(CallOutcome {
            status: Some(value.status().as_u16()),
            success: true,
            body: serde_json::to_value(value.as_ref()).unwrap_or(serde_json::Value::Null),
        });
    }

    pub(super) fn error<T: Serialize + std::fmt::Debug>(&self, error: &Error<T>) {
        let body = match error {
            Error::ErrorResponse(value) => {
                serde_json::to_value(value.as_ref()).unwrap_or(serde_json::Value::Null)
            }
            other => serde_json::Value::String(other.to_string()),
        };
        self.set(CallOutcome {
            status: error.status().map(|s| s.as_u16()),
            success: false,
            body,
        });
    }
}

/// Implements each generated `CliConfig` for [`Collector`] and the dispatch
/// from [`Api`] to the generated module.
macro_rules! dispatch {
    ($($module:ident),+) => {
        $(
            impl $crate::apis::$module::cli::CliConfig for $crate::apis::call::Collector {
                fn success_item<T>(&self, value: &progenitor_client::ResponseValue<T>)
                where
                    T: schemars::JsonSchema + serde::Serialize + std::fmt::Debug,
                {
                    self.success(value);
                }

                fn success_no_item(&self, value: &progenitor_client::ResponseValue<()>) {
                    self.success(value);
                }

                fn error<T>(&self, value: &progenitor_client::Error<T>)
                where
                    T: schemars::JsonSchema + serde::Serialize + std::fmt::Debug,
                {
                    $crate::apis::call::Collector::error(self, value);
                }

                fn list_start<T>(&self)
                where
                    T: schemars::JsonSchema + serde::Serialize + std::fmt::Debug,
                {
                }

                fn list_item<T>(&self, _value: &T)
                where
                    T: schemars::JsonSchema + serde::Serialize + std::fmt::Debug,
                {
                }

                fn list_end_success<T>(&self)
                where
                    T: schemars::JsonSchema + serde::Serialize + std::fmt::Debug,
                {
                }

                fn list_end_error<T>(&self, value: &progenitor_client::Error<T>)
                where
                    T: schemars::JsonSchema + serde::Serialize + std::fmt::Debug,
                {
                    $crate::apis::call::Collector::error(self, value);
                }
            }
        )+

        fn dispatch_operations(api: $crate::apis::Api) -> Vec<$crate::apis::call::Operation> {
            match api {
                $($crate::apis::Api::$module => {
                    use $crate::apis::$module::cli::{Cli, CliCommand};
                    let spelled = $crate::apis::call::spec_operation_ids(api.openapi_json());
                    CliCommand::iter()
                        .map(|command| $crate::apis::call::Operation {
                            api,
                            operation_id: $crate::apis::call::as_spelled(
                                command.operation_id(),
                                &spelled,
                            ),
                            summary: Cli::<$crate::apis::call::Collector>::get_command(command)
                                .get_about()
                                .and_then(|about| about.to_string().lines().next().map(str::to_owned))
                                .unwrap_or_default(),
                        })
                        .collect()
                })+
            }
        }

        async fn dispatch_call(
            api: $crate::apis::Api,
            base_url: &str,
            auth: $crate::auth::Auth,
            operation_id: &str,
            params: &[(String, String)],
            body_file: Option<&std::path::Path>,
        ) -> Result<$crate::apis::call::CallOutcome, $crate::apis::call::CallError> {
            use $crate::apis::call::{CallError, Collector};
            match api {
                $($crate::apis::Api::$module => {
                    use $crate::apis::$module::cli::{Cli, CliCommand};
                    let command = CliCommand::iter()
                        .find(|c| $crate::apis::call::same_name(c.operation_id(), operation_id))
                        .ok_or_else(|| CallError::UnknownOperation {
                            api: api.name(),
                            operation_id: operation_id.to_owned(),
                        })?;
                    let clap_command = Cli::<Collector>::get_command(command);
                    let args = $crate::apis::call::to_args(&clap_command, params, body_file)?;
                    let matches = clap_command
                        .try_get_matches_from(args)
                        .map_err(|e| CallError::BadArguments(e.render().to_string()))?;
                    let client = $crate::apis::$module::Client::from_auth(base_url, auth)
                        .map_err(|e| CallError::Failed(e.to_string()))?;
                    let collector = Collector::default();
                    let cli = Cli::new(client, collector.clone());
                    let result = cli.execute(command, &matches).await;
                    match (collector.take(), result) {
                        (Some(outcome), _) => Ok(outcome),
                        (None, Err(error)) => Err(CallError::Failed(format!("{error:#}"))),
                        (None, Ok(())) => Err(CallError::Failed(
                            "the operation returned nothing to show".to_owned(),
                        )),
                    }
                })+
            }
        }
    };
}
pub(crate) use dispatch;
