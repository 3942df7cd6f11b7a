//! The shape of every request the generated clients send, under snapshot.
//!
//! Each operation of each document in `openapi/` has one case: it calls the
//! generated client with realistic values against a wiremock server that
//! answers a valid response, checks the decoded answer, and snapshots what
//! the server received (method, path, sorted query pairs, headers, JSON
//! body) as `tests/snapshots/api_snapshots__<operationId>.snap`. Those files
//! are the contract: a change in the generator, in a spec or in the hooks
//! that alters a request shows up as a snapshot diff.
//!
//! `every_operation_of_every_spec_has_a_snapshot` reads the documents at test
//! time and fails when an operation has no case or no committed snapshot, or
//! when a snapshot is left over from an operation that no longer exists.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use m2m::apis::cenda_configuration::types as cenda;
use m2m::apis::nxtsoft_transactions::types as nxtsoft;
use m2m::test_util::{RecordingServer, TestTokens};
use serde_json::{Value, json};
use support::{cenda_client, nxtsoft_client};
use uuid::Uuid;
use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

/// The token every case sends; the snapshots show `Bearer [token]` instead.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.snapshot-access-token.c2lnbmF0dXJl";
const ORGANISATION_ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
const CREDENTIAL_TEMPLATE_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const VALIDATION_ID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const TRANSACTION_ID: &str = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff";
const IDEMPOTENCY_KEY: &str = "9b2f5c7e-1d3a-4f6b-8c9d-0e1f2a3b4c5d";
const SERIAL_NUMBER: &str = "5d1c9b2e-7a34-4f0e-9c61-2b8d7e4f1a03";

/// Declares the snapshot test of each operation (module `snapshot`, one
/// `#[tokio::test]` per case) and `COVERED`, the operationIds they cover.
/// Registry and tests come from the same list, so they cannot drift apart.
macro_rules! snapshot_cases {
    ($($operation_id:literal => $case:ident,)*) => {
        /// The operationIds that have a snapshot case.
        const COVERED: &[&str] = &[$($operation_id),*];

        mod snapshot {
            $(
                #[tokio::test]
                async fn $case() {
                    let api = super::Api::start().await;
                    super::$case(&api).await;
                    super::snapshot_request(&api, $operation_id).await;
                }
            )*
        }
    };
}

snapshot_cases! {
    "createOrganisation" => create_organisation,
    "listOrganisations" => list_organisations,
    "getOrganisation" => get_organisation,
    "updateOrganisation" => update_organisation,
    "deleteOrganisation" => delete_organisation,
    "validateOrganisation" => validate_organisation,
    "createCredentialTemplate" => create_credential_template,
    "listCredentialTemplates" => list_credential_templates,
    "getCredentialTemplate" => get_credential_template,
    "deleteCredentialTemplate" => delete_credential_template,
    "revokeCredential" => revoke_credential,
    "postValidationMessage" => post_validation_message,
    "postTransaction" => post_transaction,
}

// ---------------------------------------------------------------- harness

/// A recording server and the token source of the clients pointed at it.
struct Api {
    server: RecordingServer,
    tokens: TestTokens,
}

impl Api {
    async fn start() -> Self {
        Self {
            server: RecordingServer::start().await,
            tokens: TestTokens::new(&[TOKEN]),
        }
    }

    /// Answers the next request with `response`; exactly one is expected.
    async fn answer(&self, response: ResponseTemplate) {
        Mock::given(any())
            .respond_with(response)
            .expect(1)
            .mount(self.server.server())
            .await;
    }

    fn cenda(&self) -> m2m::apis::cenda_configuration::Client {
        cenda_client(&self.server, &self.tokens)
    }

    fn nxtsoft(&self) -> m2m::apis::nxtsoft_transactions::Client {
        nxtsoft_client(&self.server, &self.tokens)
    }
}

/// Checks the one request the case sent and snapshots its shape (see
/// [`m2m::test_util::RequestShape`]) under the operationId.
async fn snapshot_request(api: &Api, operation_id: &str) {
    let shapes = api.server.requests().await;
    assert_eq!(shapes.len(), 1, "{operation_id}: one call, one request");
    let shape = &shapes[0];

    // The snapshot shows `Bearer [token]`; the real value is checked here.
    assert_eq!(
        api.server.authorizations().await,
        [format!("Bearer {TOKEN}")]
    );
    assert_eq!(
        api.tokens.token_calls(),
        1,
        "{operation_id}: one token per call"
    );
    assert_eq!(
        api.tokens.renew_calls(),
        0,
        "{operation_id}: nothing renewed"
    );

    let operations = spec_operations(&spec_dir());
    let operation = operations
        .get(operation_id)
        .unwrap_or_else(|| panic!("no spec in openapi/ has the operation {operation_id}"));
    assert!(
        operation.matches(&shape.method, &shape.path),
        "{operation_id} is `{} {}` in {}, but the case sent `{} {}`",
        operation.method,
        operation.path,
        operation.file,
        shape.method,
        shape.path,
    );
    // A body that is not JSON would show as a string.
    assert!(
        !shape.body.is_string(),
        "{operation_id}: the request body is not JSON: {}",
        shape.body
    );
    insta::assert_json_snapshot!(operation_id, shape);
}

// ---------------------------------------------------------------- fixtures

fn uuid(text: &str) -> Uuid {
    text.parse().expect("a fixed, valid UUID")
}

fn organisation_json() -> Value {
    json!({
        "organisationId": ORGANISATION_ID,
        "name": "Acme Corporation",
        "cssUrl": "https://www.acme.example/cenda/qr-page.css",
        "roundLogo": "https://www.acme.example/assets/round-logo.png",
        "validated": false
    })
}

fn issuance_template_json() -> Value {
    json!({
        "credentialTemplateId": CREDENTIAL_TEMPLATE_ID,
        "organisationId": ORGANISATION_ID,
        "name": "Employee Badge",
        "templateType": "Issuance",
        "attributes": [
            {"name": "SerialNumber", "dataType": "String", "authenticatorLabel": "Serial number"},
            {"name": "Photo", "dataType": "JpegImageType", "authenticatorLabel": "Photo"}
        ]
    })
}

fn attribute(
    name: &str,
    data_type: cenda::AttributeDataType,
    label: Option<&str>,
) -> cenda::CredentialAttribute {
    cenda::CredentialAttribute::builder()
        .name(name)
        .data_type(data_type)
        .authenticator_label(label.map(str::to_owned))
        .try_into()
        .expect("a valid attribute")
}

fn transaction_request() -> nxtsoft::builder::TransactionRequest {
    nxtsoft::TransactionRequest::builder()
        .account_number("000123456789")
        .routing_number("021000021")
        .amount(125.5)
        .currency("USD")
        .transaction_type(nxtsoft::TransactionType::Credit)
        .reference("INV-2024-0042")
        .memo(Some("Invoice 42 settlement".to_owned()))
        .counterparty_name(Some("Jane Doe".to_owned()))
        .effective_date(NaiveDate::from_ymd_opt(2024, 6, 3))
}

// ---------------------------------------------------------------- cases

async fn create_organisation(api: &Api) {
    api.answer(ResponseTemplate::new(201).set_body_json(organisation_json()))
        .await;
    let created = api
        .cenda()
        .create_organisation()
        .body(
            cenda::CreateOrganisationRequest::builder()
                .name("Acme Corporation")
                .css_url(Some(
                    "https://www.acme.example/cenda/qr-page.css".to_owned(),
                ))
                .round_logo(Some(
                    "https://www.acme.example/assets/round-logo.png".to_owned(),
                )),
        )
        .send()
        .await
        .expect("201 with an organisation")
        .into_inner();
    assert_eq!(created.organisation_id, ORGANISATION_ID);
    assert!(!created.validated);
}

async fn list_organisations(api: &Api) {
    api.answer(ResponseTemplate::new(200).set_body_json(json!([organisation_json()])))
        .await;
    let organisations = api
        .cenda()
        .list_organisations()
        .send()
        .await
        .expect("200 with the organisations")
        .into_inner();
    assert_eq!(organisations.len(), 1);
    assert_eq!(organisations[0].name, "Acme Corporation");
}

async fn get_organisation(api: &Api) {
    api.answer(ResponseTemplate::new(200).set_body_json(organisation_json()))
        .await;
    let organisation = api
        .cenda()
        .get_organisation()
        .organisation_id(ORGANISATION_ID)
        .send()
        .await
        .expect("200 with the organisation")
        .into_inner();
    assert_eq!(organisation.organisation_id, ORGANISATION_ID);
    assert_eq!(
        organisation.round_logo.as_deref(),
        Some("https://www.acme.example/assets/round-logo.png")
    );
}

async fn update_organisation(api: &Api) {
    let mut updated = organisation_json();
    updated["name"] = json!("Acme Corporation Ltd");
    updated["cssUrl"] = json!("https://www.acme.example/cenda/qr-page-2.css");
    api.answer(ResponseTemplate::new(200).set_body_json(updated))
        .await;
    let organisation = api
        .cenda()
        .update_organisation()
        .organisation_id(ORGANISATION_ID)
        .body(
            cenda::CreateOrganisationRequest::builder()
                .name("Acme Corporation Ltd")
                .css_url(Some(
                    "https://www.acme.example/cenda/qr-page-2.css".to_owned(),
                )),
        )
        .send()
        .await
        .expect("200 with the updated organisation")
        .into_inner();
    assert_eq!(organisation.name, "Acme Corporation Ltd");
}

async fn delete_organisation(api: &Api) {
    api.answer(ResponseTemplate::new(204)).await;
    let response = api
        .cenda()
        .delete_organisation()
        .organisation_id(ORGANISATION_ID)
        .send()
        .await
        .expect("204");
    assert_eq!(response.status(), 204);
}

async fn validate_organisation(api: &Api) {
    api.answer(ResponseTemplate::new(200).set_body_json(json!({
        "organisationId": ORGANISATION_ID,
        "validated": true,
        "detail": "The DID documents of the linked domain are published."
    })))
    .await;
    let validation = api
        .cenda()
        .validate_organisation()
        .organisation_id(ORGANISATION_ID)
        .send()
        .await
        .expect("200 with the validation")
        .into_inner();
    assert!(validation.validated);
    assert_eq!(validation.organisation_id, ORGANISATION_ID);
}

async fn create_credential_template(api: &Api) {
    api.answer(ResponseTemplate::new(201).set_body_json(issuance_template_json()))
        .await;
    let template = api
        .cenda()
        .create_credential_template()
        .organisation_id(ORGANISATION_ID)
        .body(
            cenda::CreateCredentialTemplateRequest::builder()
                .name("Employee Badge")
                .template_type(cenda::TemplateType::Issuance)
                .attributes(vec![
                    attribute(
                        "SerialNumber",
                        cenda::AttributeDataType::String,
                        Some("Serial number"),
                    ),
                    attribute(
                        "Photo",
                        cenda::AttributeDataType::JpegImageType,
                        Some("Photo"),
                    ),
                ]),
        )
        .send()
        .await
        .expect("201 with the credential template")
        .into_inner();
    assert_eq!(template.credential_template_id, CREDENTIAL_TEMPLATE_ID);
    assert_eq!(template.template_type, cenda::TemplateType::Issuance);
    assert_eq!(template.attributes.len(), 2);
}

async fn list_credential_templates(api: &Api) {
    let mut verification = issuance_template_json();
    verification["name"] = json!("Employee Badge Check");
    verification["templateType"] = json!("Verification");
    api.answer(
        ResponseTemplate::new(200).set_body_json(json!([issuance_template_json(), verification])),
    )
    .await;
    let templates = api
        .cenda()
        .list_credential_templates()
        .organisation_id(ORGANISATION_ID)
        .send()
        .await
        .expect("200 with the templates")
        .into_inner();
    let kinds: Vec<_> = templates.iter().map(|t| t.template_type).collect();
    assert_eq!(
        kinds,
        [
            cenda::TemplateType::Issuance,
            cenda::TemplateType::Verification
        ]
    );
}

async fn get_credential_template(api: &Api) {
    api.answer(ResponseTemplate::new(200).set_body_json(issuance_template_json()))
        .await;
    let template = api
        .cenda()
        .get_credential_template()
        .organisation_id(ORGANISATION_ID)
        .credential_template_id(CREDENTIAL_TEMPLATE_ID)
        .send()
        .await
        .expect("200 with the credential template")
        .into_inner();
    assert_eq!(template.organisation_id, ORGANISATION_ID);
    assert_eq!(
        template.attributes[1].data_type,
        cenda::AttributeDataType::JpegImageType
    );
}

async fn delete_credential_template(api: &Api) {
    api.answer(ResponseTemplate::new(204)).await;
    let response = api
        .cenda()
        .delete_credential_template()
        .organisation_id(ORGANISATION_ID)
        .credential_template_id(CREDENTIAL_TEMPLATE_ID)
        .send()
        .await
        .expect("204");
    assert_eq!(response.status(), 204);
}

async fn revoke_credential(api: &Api) {
    api.answer(ResponseTemplate::new(204)).await;
    let response = api
        .cenda()
        .revoke_credential()
        .body(
            cenda::RevokeCredentialRequest::builder()
                .organisation_id(ORGANISATION_ID)
                .credential_template_name("Employee Badge")
                .serial_number(SERIAL_NUMBER),
        )
        .send()
        .await
        .expect("204");
    assert_eq!(response.status(), 204);
}

async fn post_validation_message(api: &Api) {
    api.answer(ResponseTemplate::new(200).set_body_json(json!({
        "validationId": VALIDATION_ID,
        "status": "Valid",
        "checks": [
            {"code": "routing_number_format", "passed": true},
            {"code": "aba_checksum", "passed": true, "message": "Routing number checksum is valid."},
            {"code": "currency_supported", "passed": true}
        ],
        "receivedAt": "2024-06-01T15:04:05Z"
    })))
    .await;
    let result = api
        .nxtsoft()
        .post_validation_message()
        .body(transaction_request())
        .send()
        .await
        .expect("200 with a validation result")
        .into_inner();
    assert_eq!(result.validation_id, uuid(VALIDATION_ID));
    assert_eq!(result.status, nxtsoft::ValidationStatus::Valid);
    assert_eq!(result.checks.len(), 3);
    assert!(result.checks.iter().all(|check| check.passed));
}

async fn post_transaction(api: &Api) {
    api.answer(ResponseTemplate::new(201).set_body_json(json!({
        "transactionId": TRANSACTION_ID,
        "status": "Pending",
        "amount": 125.5,
        "currency": "USD",
        "transactionType": "Credit",
        "reference": "INV-2024-0042",
        "effectiveDate": "2024-06-03",
        "createdAt": "2024-06-01T15:04:05Z"
    })))
    .await;
    let transaction = api
        .nxtsoft()
        .post_transaction()
        .idempotency_key(IDEMPOTENCY_KEY)
        .body(transaction_request())
        .send()
        .await
        .expect("201 with the transaction")
        .into_inner();
    assert_eq!(transaction.transaction_id, uuid(TRANSACTION_ID));
    assert_eq!(transaction.status, nxtsoft::TransactionStatus::Pending);
    assert_eq!(transaction.amount, 125.5);
}

// ---------------------------------------------------------------- coverage

/// Where an operation is declared.
#[derive(Debug)]
struct SpecOperation {
    file: String,
    method: String,
    path: String,
}

impl SpecOperation {
    /// Whether `method path` is a request to this operation: the method is
    /// the same and each `{parameter}` of the template stands for one
    /// non-empty segment.
    fn matches(&self, method: &str, path: &str) -> bool {
        let template: Vec<&str> = self.path.split('/').collect();
        let actual: Vec<&str> = path.split('/').collect();
        self.method.eq_ignore_ascii_case(method)
            && template.len() == actual.len()
            && template.iter().zip(&actual).all(|(expected, got)| {
                let is_parameter = expected.starts_with('{') && expected.ends_with('}');
                if is_parameter {
                    !got.is_empty()
                } else {
                    expected == got
                }
            })
    }
}

const SPEC_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];
const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const SNAPSHOT_PREFIX: &str = "api_snapshots__";
const SNAPSHOT_SUFFIX: &str = ".snap";

fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi")
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// Every operation of every OpenAPI document in `dir`, by operationId.
/// Panics (failing the test) on a document it cannot read, an operation
/// without an operationId, or an operationId used twice: snapshot files are
/// named by operationId, so each must be unique across all documents.
fn spec_operations(dir: &Path) -> BTreeMap<String, SpecOperation> {
    let mut operations = BTreeMap::new();
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| SPEC_EXTENSIONS.contains(&ext))
        })
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
        let spec: Value = if name.ends_with(".json") {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: invalid JSON: {e}"))
        } else {
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name}: invalid YAML: {e}"))
        };
        let paths = spec["paths"].as_object().cloned().unwrap_or_default();
        for (path, item) in &paths {
            for method in HTTP_METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let Some(operation_id) = operation["operationId"].as_str() else {
                    problems.push(format!("{name}: `{method} {path}` has no operationId"));
                    continue;
                };
                let found = SpecOperation {
                    file: name.clone(),
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                };
                if let Some(first) = operations.insert(operation_id.to_owned(), found) {
                    problems.push(format!(
                        "operationId {operation_id} is declared twice ({} and {name})",
                        first.file
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    operations
}

/// The operationIds of the committed snapshot files in `dir` (none when the
/// directory does not exist yet).
fn committed_snapshots(dir: &Path) -> BTreeSet<String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeSet::new(),
        Err(e) => panic!("cannot read {}: {e}", dir.display()),
    };
    entries
        .filter_map(|entry| {
            let name = entry.expect("a directory entry").file_name();
            let name = name.to_str()?;
            let operation_id = name
                .strip_prefix(SNAPSHOT_PREFIX)?
                .strip_suffix(SNAPSHOT_SUFFIX)?;
            Some(operation_id.to_owned())
        })
        .collect()
}

/// What is wrong between the operations the specs declare, the cases this
/// file has and the snapshots committed; empty when they agree.
fn coverage_problems(
    declared: &BTreeMap<String, SpecOperation>,
    covered: &[&str],
    committed: &BTreeSet<String>,
) -> Vec<String> {
    let declared: BTreeSet<&str> = declared.keys().map(String::as_str).collect();
    let covered_set: BTreeSet<&str> = covered.iter().copied().collect();
    let committed: BTreeSet<&str> = committed.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    let mut report = |what: &str, names: Vec<&str>| {
        if !names.is_empty() {
            problems.push(format!("{what}: {}", names.join(", ")));
        }
    };
    report(
        "operations without a snapshot case (add one to `snapshot_cases!` in tests/api_snapshots.rs)",
        declared.difference(&covered_set).copied().collect(),
    );
    report(
        "operations without a committed snapshot (run `INSTA_UPDATE=always cargo test --test api_snapshots`, review and commit tests/snapshots/)",
        declared.difference(&committed).copied().collect(),
    );
    report(
        "snapshot cases for operations that no document in openapi/ declares (remove them)",
        covered_set.difference(&declared).copied().collect(),
    );
    report(
        "snapshot files for operations that no document in openapi/ declares (delete them)",
        committed.difference(&declared).copied().collect(),
    );
    let mut seen = BTreeSet::new();
    report(
        "operations with more than one snapshot case",
        covered
            .iter()
            .copied()
            .filter(|id| !seen.insert(*id))
            .collect(),
    );
    problems
}

#[test]
fn every_operation_of_every_spec_has_a_snapshot() {
    let declared = spec_operations(&spec_dir());
    assert!(!declared.is_empty(), "openapi/ declares no operation");
    let problems = coverage_problems(&declared, COVERED, &committed_snapshots(&snapshot_dir()));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The coverage check itself: a new document with a new operation, and a
/// snapshot left from a removed one, are both named.
#[test]
fn coverage_check_names_new_and_removed_operations() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    for entry in fs::read_dir(spec_dir()).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let extra = json!({
        "openapi": "3.0.3",
        "info": {"title": "Audit", "version": "1"},
        "paths": {"/audit/export": {"post": {"operationId": "exportAuditLog", "responses": {}}}}
    });
    fs::write(dir.join("audit.json"), extra.to_string()).unwrap();
    let declared = spec_operations(dir);
    drop(temp);

    assert_eq!(declared.len(), COVERED.len() + 1);
    assert_eq!(declared["exportAuditLog"].method, "POST");
    let mut committed: BTreeSet<String> = COVERED.iter().map(|id| id.to_string()).collect();
    committed.insert("retireOrganisation".to_owned());
    let problems = coverage_problems(&declared, COVERED, &committed);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("operations without a snapshot case"));
    assert!(problems[0].ends_with(": exportAuditLog"));
    assert!(problems[1].starts_with("operations without a committed snapshot"));
    assert!(problems[1].ends_with(": exportAuditLog"));
    assert!(problems[2].starts_with("snapshot files for operations that no document"));
    assert!(problems[2].ends_with(": retireOrganisation"));
}

#[test]
fn spec_templates_match_only_their_own_requests() {
    let operation = SpecOperation {
        file: "cenda-configuration.yaml".to_owned(),
        method: "GET".to_owned(),
        path: "/api/Organisation/{organisationId}".to_owned(),
    };
    assert!(operation.matches("GET", &format!("/api/Organisation/{ORGANISATION_ID}")));
    assert!(!operation.matches("DELETE", &format!("/api/Organisation/{ORGANISATION_ID}")));
    assert!(!operation.matches("GET", "/api/Organisation/"));
    assert!(!operation.matches("GET", "/api/Organisation"));
    assert!(!operation.matches(
        "GET",
        &format!("/api/Organisation/{ORGANISATION_ID}/credentialtemplate")
    ));
}
