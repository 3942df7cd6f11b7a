//! The Cenda Configuration API: organisations and their credential
//! templates, kept in memory. Bodies are the generated types.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::api::{Api, ApiCall, FieldProblem, Problem};
use super::server::Shared;
use crate::apis::cenda_configuration::types;

const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;
const MAX_CLAIMS: usize = 100;
const MAX_VALIDITY_DAYS: u32 = 3650;

/// The operations of `openapi/cenda-configuration.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    CreateOrganisation,
    ListOrganisations,
    GetOrganisation,
    UpdateOrganisation,
    DeleteOrganisation,
    CreateCredentialTemplate,
    ListCredentialTemplates,
    GetCredentialTemplate,
    DeleteCredentialTemplate,
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
            "createCredentialTemplate" => Self::CreateCredentialTemplate,
            "listCredentialTemplates" => Self::ListCredentialTemplates,
            "getCredentialTemplate" => Self::GetCredentialTemplate,
            "deleteCredentialTemplate" => Self::DeleteCredentialTemplate,
            _ => return None,
        })
    }
}

/// The organisations, each with its templates.
#[derive(Debug, Default)]
pub(crate) struct Store {
    organisations: BTreeMap<Uuid, Entry>,
}

#[derive(Debug)]
struct Entry {
    organisation: types::Organisation,
    templates: BTreeMap<Uuid, types::CredentialTemplate>,
}

impl Store {
    fn entry(&self, id: Uuid) -> Result<&Entry, Problem> {
        self.organisations
            .get(&id)
            .ok_or_else(|| organisation_not_found(id))
    }

    fn entry_mut(&mut self, id: Uuid) -> Result<&mut Entry, Problem> {
        self.organisations
            .get_mut(&id)
            .ok_or_else(|| organisation_not_found(id))
    }

    fn name_taken(&self, name: &str, except: Option<Uuid>) -> bool {
        self.organisations.values().any(|entry| {
            Some(entry.organisation.organisation_id) != except
                && entry.organisation.name.eq_ignore_ascii_case(name)
        })
    }
}

/// Runs one operation.
pub(crate) fn handle(
    shared: &Shared,
    operation: Operation,
    call: &ApiCall,
) -> Result<Response, Problem> {
    let now = DateTime::<Utc>::from(call.now);
    let base = format!("{}{}", shared.base_url, Api::Cenda.prefix());
    match operation {
        Operation::CreateOrganisation => {
            let request: types::CreateOrganisationRequest = call.json()?;
            check_organisation_fields(&request.contact_email, request.website.as_deref())?;
            let mut store = shared.cenda();
            let name = String::from(request.name);
            if store.name_taken(&name, None) {
                return Err(conflict(format!(
                    "An organisation named '{name}' already exists."
                )));
            }
            let id = Uuid::new_v4();
            let organisation = types::Organisation {
                contact_email: request.contact_email,
                country: request.country.map(String::from),
                created_at: now,
                description: request.description.map(String::from),
                issuer_did: Some(format!("did:web:sandbox.cenda.app:organisations:{id}")),
                name,
                organisation_id: id,
                status: types::OrganisationStatus::Active,
                updated_at: now,
                website: request.website,
            };
            store.organisations.insert(
                id,
                Entry {
                    organisation: organisation.clone(),
                    templates: BTreeMap::new(),
                },
            );
            created(&format!("{base}/api/Organisation/{id}"), &organisation)
        }
        Operation::ListOrganisations => {
            let page = Paging::from_query(call)?;
            let store = shared.cenda();
            let items: Vec<_> = store
                .organisations
                .values()
                .map(|entry| &entry.organisation)
                .filter(|organisation| page.matches(&organisation.name))
                .cloned()
                .collect();
            let (items, total_count) =
                page.slice(items, |o| (o.name.to_lowercase(), o.organisation_id));
            ok(&types::OrganisationPage {
                items,
                page: page.page_i32(),
                page_size: page.page_size_i32(),
                total_count,
            })
        }
        Operation::GetOrganisation => {
            let id = call.uuid_param("organisationId")?;
            ok(&shared.cenda().entry(id)?.organisation)
        }
        Operation::UpdateOrganisation => {
            let id = call.uuid_param("organisationId")?;
            let request: types::UpdateOrganisationRequest = call.json()?;
            check_organisation_fields(&request.contact_email, request.website.as_deref())?;
            let mut store = shared.cenda();
            store.entry(id)?;
            let name = String::from(request.name);
            if store.name_taken(&name, Some(id)) {
                return Err(conflict(format!(
                    "An organisation named '{name}' already exists."
                )));
            }
            let organisation = &mut store.entry_mut(id)?.organisation;
            organisation.name = name;
            organisation.contact_email = request.contact_email;
            organisation.description = request.description.map(String::from);
            organisation.website = request.website;
            organisation.country = request.country.map(String::from);
            if let Some(status) = request.status {
                organisation.status = status;
            }
            organisation.updated_at = now;
            ok(&*organisation)
        }
        Operation::DeleteOrganisation => {
            let id = call.uuid_param("organisationId")?;
            let mut store = shared.cenda();
            let published = store
                .entry(id)?
                .templates
                .values()
                .filter(|t| t.status == types::CredentialTemplateStatus::Published)
                .count();
            if published > 0 {
                return Err(conflict(format!(
                    "Organisation {id} still has {published} published credential template(s); revoke or delete them first."
                )));
            }
            store.organisations.remove(&id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Operation::CreateCredentialTemplate => {
            let organisation_id = call.uuid_param("organisationId")?;
            let request: types::CreateCredentialTemplateRequest = call.json()?;
            check_template(&request)?;
            let mut store = shared.cenda();
            let entry = store.entry_mut(organisation_id)?;
            let name = String::from(request.name);
            if entry
                .templates
                .values()
                .any(|t| t.name.eq_ignore_ascii_case(&name))
            {
                return Err(conflict(format!(
                    "A credential template named '{name}' already exists for organisation {organisation_id}."
                )));
            }
            let id = Uuid::new_v4();
            let template = types::CredentialTemplate {
                claims: request.claims,
                created_at: now,
                credential_template_id: id,
                credential_type: String::from(request.credential_type),
                description: request.description.map(String::from),
                display: request.display,
                format: request.format,
                name,
                organisation_id,
                status: types::CredentialTemplateStatus::Draft,
                updated_at: now,
                // Checked above: at most MAX_VALIDITY_DAYS.
                validity_period_days: i32::try_from(request.validity_period_days.get())
                    .unwrap_or(i32::MAX),
            };
            entry.templates.insert(id, template.clone());
            created(
                &format!("{base}/api/Organisation/{organisation_id}/credentialtemplate/{id}"),
                &template,
            )
        }
        Operation::ListCredentialTemplates => {
            let organisation_id = call.uuid_param("organisationId")?;
            let page = Paging::from_query(call)?;
            let store = shared.cenda();
            let items: Vec<_> = store
                .entry(organisation_id)?
                .templates
                .values()
                .filter(|template| page.matches(&template.name))
                .cloned()
                .collect();
            let (items, total_count) =
                page.slice(items, |t| (t.name.to_lowercase(), t.credential_template_id));
            ok(&types::CredentialTemplatePage {
                items,
                page: page.page_i32(),
                page_size: page.page_size_i32(),
                total_count,
            })
        }
        Operation::GetCredentialTemplate => {
            let organisation_id = call.uuid_param("organisationId")?;
            let id = call.uuid_param("credentialTemplateId")?;
            let store = shared.cenda();
            let template = store
                .entry(organisation_id)?
                .templates
                .get(&id)
                .ok_or_else(|| template_not_found(id))?;
            ok(template)
        }
        Operation::DeleteCredentialTemplate => {
            let organisation_id = call.uuid_param("organisationId")?;
            let id = call.uuid_param("credentialTemplateId")?;
            let mut store = shared.cenda();
            let templates = &mut store.entry_mut(organisation_id)?.templates;
            let template = templates.get(&id).ok_or_else(|| template_not_found(id))?;
            if template.status == types::CredentialTemplateStatus::Published {
                return Err(conflict(format!(
                    "Credential template {id} is published; revoke it first."
                )));
            }
            templates.remove(&id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

/// `page`, `pageSize` and `search` of a list operation.
struct Paging {
    page: u32,
    page_size: u32,
    search: Option<String>,
}

impl Paging {
    fn from_query(call: &ApiCall) -> Result<Self, Problem> {
        let query = call.query_params();
        let number = |name: &str, default: u32, max: u32| -> Result<u32, FieldProblem> {
            let Some(raw) = query.get(name) else {
                return Ok(default);
            };
            raw.parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| FieldProblem {
                    field: name.to_owned(),
                    code: "range",
                    message: format!(
                        "The value '{raw}' is not valid for {name}: expected 1 to {max}."
                    ),
                })
        };
        let page = number("page", 1, i32::MAX as u32);
        let page_size = number("pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        match (page, page_size) {
            (Ok(page), Ok(page_size)) => Ok(Self {
                page,
                page_size,
                search: query.get("search").map(|s| s.to_lowercase()),
            }),
            (page, page_size) => Err(Problem::invalid(
                [page.err(), page_size.err()]
                    .into_iter()
                    .flatten()
                    .collect(),
            )),
        }
    }

    fn matches(&self, name: &str) -> bool {
        self.search
            .as_deref()
            .is_none_or(|search| name.to_lowercase().contains(search))
    }

    /// Orders by `key` and cuts out this page; also returns the total.
    fn slice<T, K: Ord>(&self, mut items: Vec<T>, key: impl Fn(&T) -> K) -> (Vec<T>, i64) {
        items.sort_by_key(|item| key(item));
        let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
        let skip = (self.page as usize - 1).saturating_mul(self.page_size as usize);
        let page = items
            .into_iter()
            .skip(skip)
            .take(self.page_size as usize)
            .collect();
        (page, total)
    }

    fn page_i32(&self) -> i32 {
        i32::try_from(self.page).unwrap_or(i32::MAX)
    }

    fn page_size_i32(&self) -> i32 {
        i32::try_from(self.page_size).unwrap_or(i32::MAX)
    }
}

/// What the generated types cannot check: `format: email` and `format: uri`.
fn check_organisation_fields(contact_email: &str, website: Option<&str>) -> Result<(), Problem> {
    let mut fields = Vec::new();
    if !looks_like_email(contact_email) {
        fields.push(FieldProblem {
            field: "contactEmail".into(),
            code: "format",
            message: "The ContactEmail field is not a valid e-mail address.".into(),
        });
    }
    if let Some(website) = website
        && !is_web_url(website)
    {
        fields.push(FieldProblem {
            field: "website".into(),
            code: "format",
            message: "The Website field is not a valid absolute http(s) URL.".into(),
        });
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid(fields))
    }
}

/// What the generated types cannot check: the number and uniqueness of
/// claims, the maximum validity, and `format: uri` of the logo.
fn check_template(request: &types::CreateCredentialTemplateRequest) -> Result<(), Problem> {
    let mut fields = Vec::new();
    let claims = request.claims.len();
    if !(1..=MAX_CLAIMS).contains(&claims) {
        fields.push(FieldProblem {
            field: "claims".into(),
            code: "range",
            message: format!("A template has 1 to {MAX_CLAIMS} claims; got {claims}."),
        });
    }
    for (index, claim) in request.claims.iter().enumerate() {
        let name: &str = &claim.name;
        if request.claims[..index]
            .iter()
            .any(|earlier| *earlier.name == *name)
        {
            fields.push(FieldProblem {
                field: format!("claims[{index}].name"),
                code: "unique",
                message: format!("The claim name '{name}' is used twice."),
            });
        }
    }
    if request.validity_period_days.get() > MAX_VALIDITY_DAYS {
        fields.push(FieldProblem {
            field: "validityPeriodDays".into(),
            code: "range",
            message: format!("validityPeriodDays must be between 1 and {MAX_VALIDITY_DAYS}."),
        });
    }
    if let Some(logo) = request.display.as_ref().and_then(|d| d.logo_uri.as_deref())
        && !is_web_url(logo)
    {
        fields.push(FieldProblem {
            field: "display.logoUri".into(),
            code: "format",
            message: "The LogoUri field is not a valid absolute http(s) URL.".into(),
        });
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid(fields))
    }
}

fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !text.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty())
}

fn is_web_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
}

fn organisation_not_found(id: Uuid) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("Organisation {id} was not found."),
    )
}

fn template_not_found(id: Uuid) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("Credential template {id} was not found."),
    )
}

fn conflict(message: String) -> Problem {
    Problem::new(StatusCode::CONFLICT, "conflict", message)
}

fn ok<T: serde::Serialize>(body: &T) -> Result<Response, Problem> {
    json(StatusCode::OK, body, None)
}

fn created<T: serde::Serialize>(location: &str, body: &T) -> Result<Response, Problem> {
    json(StatusCode::CREATED, body, Some(location))
}

fn json<T: serde::Serialize>(
    status: StatusCode,
    body: &T,
    location: Option<&str>,
) -> Result<Response, Problem> {
    let text = serde_json::to_string(body).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })?;
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        text,
    )
        .into_response();
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// A problem as Cenda's `ApiError` (RFC 7807-like).
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
    let body = types::ApiError {
        detail: Some(if problem.fields.is_empty() {
            problem.message
        } else {
            "The request failed validation.".to_owned()
        }),
        errors,
        status: Some(i32::from(problem.status.as_u16())),
        title: Some(title.to_owned()),
        trace_id: Some(format!("00-{trace}-{}-01", &trace[..16])),
        type_: Some(type_.to_owned()),
    };
    let mut response =
        json(problem.status, &body, None).unwrap_or_else(|p| p.status.into_response());
    for (name, value) in problem.headers {
        response.headers_mut().insert(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_and_url_checks() {
        assert!(looks_like_email("it-admin@acme.example"));
        assert!(!looks_like_email("it-admin@localhost"));
        assert!(!looks_like_email("not an email@acme.example"));
        assert!(!looks_like_email("a@b@c.example"));
        assert!(is_web_url("https://www.acme.example"));
        assert!(!is_web_url("ftp://acme.example"));
        assert!(!is_web_url("acme.example"));
    }

    #[test]
    fn paging_cuts_pages_in_name_order() {
        let paging = Paging {
            page: 2,
            page_size: 2,
            search: None,
        };
        let (page, total) = paging.slice(vec!["d", "B", "a", "c", "e"], |s| s.to_lowercase());
        assert_eq!((page, total), (vec!["c", "d"], 5));
    }
}
