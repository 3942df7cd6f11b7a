//! An error answer of a sandbox API, before it is put in the API's own
//! error schema.

use axum::http::{HeaderValue, StatusCode, header};

/// An error answer, before it is put in the API's schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) status: StatusCode,
    /// Machine-readable code (NXTsoft's `code`).
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) fields: Vec<FieldProblem>,
    pub(crate) headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// One offending field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldProblem {
    pub(crate) field: String,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// A 400 for one field.
    pub(crate) fn invalid_field(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::invalid(vec![FieldProblem {
            field: field.into(),
            code,
            message: message.into(),
        }])
    }

    /// A 400 for several fields (none: the body as a whole).
    pub(crate) fn invalid(fields: Vec<FieldProblem>) -> Self {
        Self {
            fields,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request is not valid.",
            )
        }
    }

    pub(crate) fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}
