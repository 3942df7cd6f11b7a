//! Cenda onboarding in the vendor's order: a token from Microsoft Entra ID,
//! create the organisation, validate it, create an issuance template (with
//! the `SerialNumber` attribute Cenda revokes by) and a verification
//! template, list them, then revoke an issued credential.
//!
//! ```sh
//! cargo run --example cenda_onboarding            # on the embedded sandbox
//! CENDA_TENANT_ID=… CENDA_GATEWAY_CLIENT_ID=… CENDA_CLIENT_ID=… \
//! CENDA_CLIENT_SECRET=… CENDA_API_BASE_URL=https://… \
//! CENDA_SERIAL_NUMBER=… cargo run --example cenda_onboarding
//! ```
//!
//! Credentials are issued through Cenda's OIDC interface, not the
//! Configuration API: against a real instance the example revokes the
//! credential whose SerialNumber is in `CENDA_SERIAL_NUMBER` (if set); on
//! the sandbox, `Sandbox::issue_credential` issues one first.

mod support;

use m2m::apis::cenda_configuration::{Client, types};
use m2m::auth::{Auth, ClientCredential, TokenCache, TokenEndpoint};
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
    // 1. The token: fetched on the first call, reused by every later one.
    let cenda = Client::new(&api_base_url, Auth::new(endpoint, &TokenCache::in_memory()));

    // 2. Create the organisation.
    let organisation = cenda
        .create_organisation()
        .body(
            types::CreateOrganisationRequest::builder()
                .name("Acme Corporation")
                .css_url(Some(
                    "https://www.acme.example/cenda/qr-page.css".to_owned(),
                )),
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
    let id = organisation.organisation_id;
    println!("created organisation {id} ({})", organisation.name);

    // 3. Validate it: templates can only be created afterwards.
    let validation = cenda
        .validate_organisation()
        .organisation_id(&id)
        .send()
        .await?;
    println!(
        "validated: {} ({})",
        validation.validated,
        validation.detail.as_deref().unwrap_or_default()
    );

    // 4. An issuance template: at least one attribute, one named SerialNumber.
    let attribute = |name: &str, data_type, label: Option<&str>| {
        types::CredentialAttribute::builder()
            .name(name)
            .data_type(data_type)
            .authenticator_label(label.map(str::to_owned))
            .try_into()
    };
    let issuance = cenda
        .create_credential_template()
        .organisation_id(&id)
        .body(
            types::CreateCredentialTemplateRequest::builder()
                .name("Employee Badge")
                .template_type(types::TemplateType::Issuance)
                .attributes(vec![
                    attribute(
                        "SerialNumber",
                        types::AttributeDataType::String,
                        Some("Serial number"),
                    )?,
                    attribute("FullName", types::AttributeDataType::String, Some("Name"))?,
                ]),
        )
        .send()
        .await?
        .into_inner();
    println!("created issuance template {:?}", issuance.name);

    // 5. A verification template: the attributes it requests.
    let verification = cenda
        .create_credential_template()
        .organisation_id(&id)
        .body(
            types::CreateCredentialTemplateRequest::builder()
                .name("Employee Badge Check")
                .template_type(types::TemplateType::Verification)
                .attributes(vec![attribute(
                    "FullName",
                    types::AttributeDataType::String,
                    None,
                )?]),
        )
        .send()
        .await?
        .into_inner();
    println!("created verification template {:?}", verification.name);

    // 6. List them.
    let templates = cenda
        .list_credential_templates()
        .organisation_id(&id)
        .send()
        .await?;
    println!(
        "organisation {id} has {} credential template(s)",
        templates.len()
    );

    // 7. Revoke a credential issued from the issuance template.
    let serial_number = match (&sandbox, setting("CENDA_SERIAL_NUMBER")) {
        (Some(sandbox), _) => Some(sandbox.issue_credential(&id, &issuance.name, None)?),
        (None, serial_number) => serial_number,
    };
    match serial_number {
        Some(serial_number) => {
            cenda
                .revoke_credential()
                .body(
                    types::RevokeCredentialRequest::builder()
                        .organisation_id(id.clone())
                        .credential_template_name(issuance.name.clone())
                        .serial_number(serial_number.clone()),
                )
                .send()
                .await?;
            println!("revoked credential {serial_number}");
        }
        None => println!("CENDA_SERIAL_NUMBER is not set: nothing to revoke"),
    }

    stop_sandbox(sandbox).await
}
