//! Cenda onboarding: create an organisation and a credential template on the
//! Cenda Configuration API (token from Microsoft Entra ID), then read them
//! back.
//!
//! ```sh
//! cargo run --example cenda_onboarding            # on the embedded sandbox
//! CENDA_TENANT_ID=… CENDA_GATEWAY_CLIENT_ID=… CENDA_CLIENT_ID=… \
//! CENDA_CLIENT_SECRET=… CENDA_API_BASE_URL=https://… cargo run --example cenda_onboarding
//! ```

mod support;

use m2m::apis::cenda_configuration::{Client, types};
use m2m::auth::{Auth, ClientCredential, TokenEndpoint};
use m2m::provider::Provider;
use m2m::sandbox::demo;
use progenitor_client::ClientInfo;
use support::{required, setting, start_sandbox, stop_sandbox};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sandbox = None;
    let (endpoint, api_base_url) = match setting("CENDA_CLIENT_SECRET") {
        Some(secret) => {
            let provider = Provider::cenda(
                required("CENDA_TENANT_ID")?,
                required("CENDA_GATEWAY_CLIENT_ID")?,
            );
            let endpoint = TokenEndpoint::builder(
                provider,
                required("CENDA_CLIENT_ID")?,
                ClientCredential::secret(secret),
            );
            (endpoint.build()?, required("CENDA_API_BASE_URL")?)
        }
        None => {
            let local = start_sandbox("CENDA_CLIENT_SECRET").await?;
            // The Entra endpoint of the sandbox: same path, same tenant rule.
            let provider = Provider::cenda(demo::ENTRA_TENANT_ID, demo::CENDA_GATEWAY_CLIENT_ID)
                .with_authority_host(local.base_url().parse()?);
            let endpoint = TokenEndpoint::builder(
                provider,
                demo::ENTRA_CLIENT_ID,
                ClientCredential::secret(demo::ENTRA_CLIENT_SECRET),
            );
            let api_base_url = local.cenda_api_url();
            sandbox = Some(local);
            (endpoint.build()?, api_base_url)
        }
    };
    let cenda = Client::new(&api_base_url, Auth::new(endpoint));

    let organisation = cenda
        .create_organisation()
        .body(
            types::CreateOrganisationRequest::builder()
                .name("Acme Corporation")
                .contact_email("it-admin@acme.example"),
        )
        .send()
        .await;
    let organisation = match organisation {
        Ok(organisation) => organisation.into_inner(),
        Err(error) => {
            // A call that failed for want of a token carries the typed error.
            return Err(match cenda.inner().error_of(&error) {
                Some(auth_error) => format!("no token for Cenda: {auth_error}").into(),
                None => format!("createOrganisation: {error}").into(),
            });
        }
    };
    println!(
        "created organisation {} ({})",
        organisation.organisation_id, organisation.name
    );

    let template = cenda
        .create_credential_template()
        .organisation_id(organisation.organisation_id)
        .body(
            types::CreateCredentialTemplateRequest::builder()
                .name("Employee Badge")
                .credential_type("EmployeeBadgeCredential")
                .format(types::CredentialFormat::JwtVc)
                .validity_period_days(365u32)
                .claims(vec![
                    types::ClaimDefinition::builder()
                        .name("employeeNumber")
                        .display_name("Employee number")
                        .data_type(types::ClaimDataType::String)
                        .try_into()?,
                ]),
        )
        .send()
        .await?
        .into_inner();
    println!(
        "created credential template {} ({:?})",
        template.credential_template_id, template.format
    );

    // Read both back: the same token serves every call until shortly
    // before it expires.
    let read = cenda
        .get_organisation()
        .organisation_id(organisation.organisation_id)
        .send()
        .await?;
    let templates = cenda
        .list_credential_templates()
        .organisation_id(organisation.organisation_id)
        .send()
        .await?;
    println!(
        "read back organisation {:?} with {} credential template(s)",
        read.name,
        templates.items.len()
    );

    stop_sandbox(sandbox).await
}
