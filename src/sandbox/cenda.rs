//! The Cenda Configuration API in memory: organisations, their validation,
//! their issuance and verification credential templates, and the
//! revocation of issued credentials.
//!
//! Requests reach the handlers already checked against the document's
//! schemas (`contract.rs`); what is left here are the rules the operations
//! state in words: templates only for a validated organisation, an issuance
//! template with at least one attribute and one named `SerialNumber`,
//! template names unique within an organisation, and revocation of a
//! credential that was issued. Issuance itself goes through Cenda's OIDC
//! interface, not this API: [`Store::issue`] stands in for it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::api_call::ApiCall;
use super::problem::{FieldProblem, Problem};
use crate::apis::cenda_configuration::types;

/// The name of the attribute every issuance template must have: Cenda's
/// revocation index.
pub(crate) const SERIAL_NUMBER_ATTRIBUTE: &str = "SerialNumber";

/// What the sandbox answers to `validateOrganisation`.
pub(crate) const SANDBOX_VALIDATION_DETAIL: &str = "Validated by the m2m sandbox, which has no \
     DNS to check; a real Cenda instance checks that the linked domain publishes the \
     organisation's DID documents.";

/// The operations of `openapi/cenda-configuration.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    CreateOrganisation,
    ListOrganisations,
    GetOrganisation,
    UpdateOrganisation,
    DeleteOrganisation,
    ValidateOrganisation,
    CreateCredentialTemplate,
    ListCredentialTemplates,
    GetCredentialTemplate,
    DeleteCredentialTemplate,
    RevokeCredential,
}

impl Operation {
    /// The operation with this `operationId`.
    pub(crate) fn from_id(operation_id: &str) -> Option<Self> {
        Some(match operation_id {
            "createOrganisation" => Self::CreateOrganisation,
            "listOrganisations" => Self::ListOrganisations,
            "getOrganisation" => Self::GetOrganisation,
            "updateOrganisation" => Self::UpdateOrganisation,
            "deleteOrganisation" => Self::DeleteOrganisation,
            "validateOrganisation" => Self::ValidateOrganisation,
            "createCredentialTemplate" => Self::CreateCredentialTemplate,
            "listCredentialTemplates" => Self::ListCredentialTemplates,
            "getCredentialTemplate" => Self::GetCredentialTemplate,
            "deleteCredentialTemplate" => Self::DeleteCredentialTemplate,
            "revokeCredential" => Self::RevokeCredential,
            _ => return None,
        })
    }
}

/// The organisations, in creation order, each with its templates and the
/// credentials issued from them.
#[derive(Debug, Default)]
pub(crate) struct Store {
    organisations: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    organisation: types::Organisation,
    templates: Vec<types::CredentialTemplate>,
    issued: Vec<Issued>,
}

/// A credential issued from an issuance template.
#[derive(Debug)]
struct Issued {
    template_name: String,
    serial_number: String,
    revoked: bool,
}

/// Why `Store::issue` issued nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuanceError {
    /// No organisation has this id.
    #[error("organisation {0} was not found")]
    UnknownOrganisation(String),
    /// The organisation has no issuance template of this name.
    #[error("organisation {organisation_id} has no issuance template named {template_name:?}")]
    UnknownTemplate {
        /// The organisation.
        organisation_id: String,
        /// The template name asked for.
        template_name: String,
    },
    /// A credential with this serial number was already issued from the
    /// template.
    #[error("a credential with serial number {0:?} was already issued from this template")]
    SerialNumberTaken(String),
}

impl Store {
    fn entry(&self, id: &str) -> Result<&Entry, Problem> {
        self.organisations
            .iter()
            .find(|entry| entry.organisation.organisation_id == id)
            .ok_or_else(|| organisation_not_found(id))
    }

    fn entry_mut(&mut self, id: &str) -> Result<&mut Entry, Problem> {
        self.organisations
            .iter_mut()
            .find(|entry| entry.organisation.organisation_id == id)
            .ok_or_else(|| organisation_not_found(id))
    }

    /// Issues a credential from the organisation's issuance template
    /// `template_name`, as Cenda's OIDC issuance would: with the serial
    /// number given (in the `idTokenHint`), or a new GUID. Returns the
    /// serial number.
    pub(crate) fn issue(
        &mut self,
        organisation_id: &str,
        template_name: &str,
        serial_number: Option<&str>,
    ) -> Result<String, IssuanceError> {
        let entry = self
            .organisations
            .iter_mut()
            .find(|entry| entry.organisation.organisation_id == organisation_id)
            .ok_or_else(|| IssuanceError::UnknownOrganisation(organisation_id.to_owned()))?;
        let is_issuance_template = entry.templates.iter().any(|template| {
            template.name == template_name
                && template.template_type == types::TemplateType::Issuance
        });
        if !is_issuance_template {
            return Err(IssuanceError::UnknownTemplate {
                organisation_id: organisation_id.to_owned(),
                template_name: template_name.to_owned(),
            });
        }
        let serial_number = serial_number.map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
        let taken = entry.issued.iter().any(|issued| {
            issued.template_name == template_name && issued.serial_number == serial_number
        });
        if taken {
            return Err(IssuanceError::SerialNumberTaken(serial_number));
        }
        entry.issued.push(Issued {
            template_name: template_name.to_owned(),
            serial_number: serial_number.clone(),
            revoked: false,
        });
        Ok(serial_number)
    }
}

/// Runs one operation on the organisations in `store`.
pub(crate) fn handle(
    store: &mut Store,
    operation: Operation,
    call: &ApiCall,
) -> Result<Response, Problem> {
    match operation {
        Operation::CreateOrganisation => {
            let request: types::CreateOrganisationRequest = call.json()?;
            let organisation = types::Organisation {
                organisation_id: Uuid::new_v4().to_string(),
                name: request.name,
                css_url: request.css_url,
                round_logo: request.round_logo,
                validated: false,
            };
            store.organisations.push(Entry {
                organisation: organisation.clone(),
                templates: Vec::new(),
                issued: Vec::new(),
            });
            json(StatusCode::CREATED, &organisation)
        }
        Operation::ListOrganisations => {
            let organisations: Vec<_> = store
                .organisations
                .iter()
                .map(|entry| &entry.organisation)
                .collect();
            json(StatusCode::OK, &organisations)
        }
        Operation::GetOrganisation => json(
            StatusCode::OK,
            &store.entry(call.param("organisationId"))?.organisation,
        ),
        Operation::UpdateOrganisation => {
            let request: types::CreateOrganisationRequest = call.json()?;
            let organisation = &mut store.entry_mut(call.param("organisationId"))?.organisation;
            organisation.name = request.name;
            organisation.css_url = request.css_url;
            organisation.round_logo = request.round_logo;
            json(StatusCode::OK, &*organisation)
        }
        Operation::DeleteOrganisation => {
            let id = call.param("organisationId");
            store.entry(id)?;
            store
                .organisations
                .retain(|entry| entry.organisation.organisation_id != id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Operation::ValidateOrganisation => {
            let organisation = &mut store.entry_mut(call.param("organisationId"))?.organisation;
            organisation.validated = true;
            json(
                StatusCode::OK,
                &types::OrganisationValidation {
                    organisation_id: organisation.organisation_id.clone(),
                    validated: true,
                    detail: Some(SANDBOX_VALIDATION_DETAIL.to_owned()),
                },
            )
        }
        Operation::CreateCredentialTemplate => {
            let request: types::CreateCredentialTemplateRequest = call.json()?;
            let organisation_id = call.param("organisationId");
            let entry = store.entry_mut(organisation_id)?;
            check_attributes(&request)?;
            if !entry.organisation.validated {
                return Err(rule(
                    StatusCode::CONFLICT,
                    "organisationId",
                    format!(
                        "Organisation {organisation_id} is not validated: credential templates can \
                         only be created once the organisation is validated (validateOrganisation)."
                    ),
                ));
            }
            if entry
                .templates
                .iter()
                .any(|template| template.name.eq_ignore_ascii_case(&request.name))
            {
                return Err(rule(
                    StatusCode::CONFLICT,
                    "name",
                    format!(
                        "Organisation {organisation_id} already has a credential template named '{}'.",
                        request.name
                    ),
                ));
            }
            let template = types::CredentialTemplate {
                credential_template_id: Uuid::new_v4().to_string(),
                organisation_id: organisation_id.to_owned(),
                name: request.name,
                template_type: request.template_type,
                attributes: request.attributes,
            };
            entry.templates.push(template.clone());
            json(StatusCode::CREATED, &template)
        }
        Operation::ListCredentialTemplates => json(
            StatusCode::OK,
            &store.entry(call.param("organisationId"))?.templates,
        ),
        Operation::GetCredentialTemplate => {
            let entry = store.entry(call.param("organisationId"))?;
            let id = call.param("credentialTemplateId");
            let template = entry
                .templates
                .iter()
                .find(|template| template.credential_template_id == id)
                .ok_or_else(|| template_not_found(id))?;
            json(StatusCode::OK, template)
        }
        Operation::DeleteCredentialTemplate => {
            let entry = store.entry_mut(call.param("organisationId"))?;
            let id = call.param("credentialTemplateId");
            let before = entry.templates.len();
            entry
                .templates
                .retain(|template| template.credential_template_id != id);
            if entry.templates.len() == before {
                return Err(template_not_found(id));
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Operation::RevokeCredential => {
            let request: types::RevokeCredentialRequest = call.json()?;
            let entry = store.entry_mut(&request.organisation_id)?;
            let template_known = entry.templates.iter().any(|template| {
                template.name == request.credential_template_name
                    && template.template_type == types::TemplateType::Issuance
            });
            if !template_known {
                return Err(rule(
                    StatusCode::NOT_FOUND,
                    "credentialTemplateName",
                    format!(
                        "Organisation {} has no issuance template named '{}'.",
                        request.organisation_id, request.credential_template_name
                    ),
                ));
            }
            let issued = entry
                .issued
                .iter_mut()
                .find(|issued| {
                    issued.template_name == request.credential_template_name
                        && issued.serial_number == request.serial_number
                })
                .ok_or_else(|| {
                    rule(
                        StatusCode::NOT_FOUND,
                        "serialNumber",
                        format!(
                            "No credential with SerialNumber '{}' was issued from '{}'.",
                            request.serial_number, request.credential_template_name
                        ),
                    )
                })?;
            issued.revoked = true;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

/// An issuance template has at least one attribute, one of them named
/// `SerialNumber`. (Each data type was checked against the document's enum.)
fn check_attributes(request: &types::CreateCredentialTemplateRequest) -> Result<(), Problem> {
    if request.template_type != types::TemplateType::Issuance {
        return Ok(());
    }
    let message = if request.attributes.is_empty() {
        format!(
            "An issuance template needs at least one attribute, one of them named {SERIAL_NUMBER_ATTRIBUTE}."
        )
    } else if !request
        .attributes
        .iter()
        .any(|attribute| attribute.name == SERIAL_NUMBER_ATTRIBUTE)
    {
        format!(
            "An issuance template needs an attribute named {SERIAL_NUMBER_ATTRIBUTE}: Cenda uses it \
             as the credential's index for revocation."
        )
    } else {
        return Ok(());
    };
    Err(rule(StatusCode::BAD_REQUEST, "attributes", message))
}

/// A broken rule, with the field it concerns.
fn rule(status: StatusCode, field: &str, message: String) -> Problem {
    Problem {
        fields: vec![FieldProblem {
            field: field.to_owned(),
            code: "rule",
            message: message.clone(),
        }],
        ..Problem::new(status, "rule", message)
    }
}

fn organisation_not_found(id: &str) -> Problem {
    rule(
        StatusCode::NOT_FOUND,
        "organisationId",
        format!("Organisation {id} was not found."),
    )
}

fn template_not_found(id: &str) -> Problem {
    rule(
        StatusCode::NOT_FOUND,
        "credentialTemplateId",
        format!("Credential template {id} was not found."),
    )
}

fn json<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Result<Response, Problem> {
    let text = serde_json::to_string(body).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })?;
    Ok(with_content_type(
        status,
        "application/json; charset=utf-8",
        text,
    ))
}

fn with_content_type(status: StatusCode, content_type: &'static str, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        text,
    )
        .into_response()
}

/// A problem as RFC 9457 problem details (`application/problem+json`), the
/// way an ASP.NET Core `[ApiController]` service writes them.
pub(crate) fn problem_response(problem: Problem) -> Response {
    let mut errors: std::collections::HashMap<String, Vec<String>> = Default::default();
    for field in &problem.fields {
        errors
            .entry(field.field.clone())
            .or_default()
            .push(field.message.clone());
    }
    let (type_, title) = match problem.status.as_u16() {
        400 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "One or more validation errors occurred.",
        ),
        401 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.2",
            "Unauthorized",
        ),
        403 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.4",
            "Forbidden",
        ),
        404 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.5",
            "Not Found",
        ),
        409 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.10",
            "Conflict",
        ),
        429 => (
            "https://tools.ietf.org/html/rfc6585#section-4",
            "Too Many Requests",
        ),
        _ => (
            "https://tools.ietf.org/html/rfc9110#section-15.6.1",
            "An error occurred while processing your request.",
        ),
    };
    let trace = Uuid::new_v4().simple().to_string();
    let body = types::ProblemDetails {
        type_: Some(type_.to_owned()),
        title: Some(title.to_owned()),
        status: Some(i32::from(problem.status.as_u16())),
        detail: Some(problem.message),
        instance: None,
        trace_id: Some(format!("00-{trace}-{}-01", &trace[..16])),
        errors,
    };
    let text = serde_json::to_string(&body).unwrap_or_default();
    let mut response = with_content_type(
        problem.status,
        "application/problem+json; charset=utf-8",
        text,
    );
    for (name, value) in problem.headers {
        response.headers_mut().insert(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(
        template_type: types::TemplateType,
        names: &[&str],
    ) -> types::CreateCredentialTemplateRequest {
        types::CreateCredentialTemplateRequest {
            name: "Employee Badge".to_owned(),
            template_type,
            attributes: names
                .iter()
                .map(|name| types::CredentialAttribute {
                    name: (*name).to_owned(),
                    data_type: types::AttributeDataType::String,
                    authenticator_label: None,
                })
                .collect(),
        }
    }

    #[test]
    fn issuance_templates_need_a_serial_number_attribute() {
        use types::TemplateType::{Issuance, Verification};
        assert!(check_attributes(&template(Issuance, &["FullName", "SerialNumber"])).is_ok());
        assert!(check_attributes(&template(Verification, &[])).is_ok());
        for names in [&[][..], &["FullName", "serialnumber"][..]] {
            let problem = check_attributes(&template(Issuance, names)).unwrap_err();
            assert_eq!(problem.status, StatusCode::BAD_REQUEST);
            assert_eq!(problem.fields[0].field, "attributes");
            assert!(
                problem.fields[0].message.contains("SerialNumber"),
                "{problem:?}"
            );
        }
    }

    #[test]
    fn issuance_records_serial_numbers_once() {
        let mut store = Store::default();
        store.organisations.push(Entry {
            organisation: types::Organisation {
                organisation_id: "org".to_owned(),
                name: "Acme".to_owned(),
                css_url: None,
                round_logo: None,
                validated: true,
            },
            templates: vec![types::CredentialTemplate {
                credential_template_id: "t".to_owned(),
                organisation_id: "org".to_owned(),
                name: "Badge".to_owned(),
                template_type: types::TemplateType::Issuance,
                attributes: Vec::new(),
            }],
            issued: Vec::new(),
        });
        assert_eq!(store.issue("org", "Badge", Some("42")), Ok("42".to_owned()));
        assert_eq!(
            store.issue("org", "Badge", Some("42")),
            Err(IssuanceError::SerialNumberTaken("42".to_owned()))
        );
        let generated = store.issue("org", "Badge", None).unwrap();
        assert!(Uuid::parse_str(&generated).is_ok(), "{generated}");
        assert!(matches!(
            store.issue("org", "Pass", None),
            Err(IssuanceError::UnknownTemplate { .. })
        ));
        assert!(matches!(
            store.issue("other", "Badge", None),
            Err(IssuanceError::UnknownOrganisation(_))
        ));
    }
}
