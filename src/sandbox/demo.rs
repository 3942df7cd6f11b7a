//! The clients registered in the sandbox and the scopes it knows.
//!
//! Every value here is a fixed, public, sandbox-only credential: `m2m demo`
//! prints them, tests and examples use them. None of them is accepted by any
//! real identity provider.

use std::fmt;

/// The Entra ID tenant the sandbox serves (`/{tenant}/oauth2/v2.0/token`).
pub const ENTRA_TENANT_ID: &str = "7d1b3c5e-0f4a-4e8b-9c2d-5a6f7e8d9c0b";
/// The client id of the Cenda API gateway: the resource of Entra's
/// `{GatewayClientId}/.default` scope, and the audience of Cenda tokens.
pub const CENDA_GATEWAY_CLIENT_ID: &str = "c3e1a7f0-5b2d-4c8e-9f1a-2b3c4d5e6f70";
/// The scope an Entra client asks for to call the Cenda Configuration API.
pub const CENDA_ENTRA_SCOPE: &str = "c3e1a7f0-5b2d-4c8e-9f1a-2b3c4d5e6f70/.default";
/// The Entra demo client (Cenda style: secret in the form body).
pub const ENTRA_CLIENT_ID: &str = "5a1d2b3c-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
/// The secret of [`ENTRA_CLIENT_ID`] (sandbox only).
pub const ENTRA_CLIENT_SECRET: &str = "sbx~EntraDemo.Secret_4f2a9c71e0b8d365";
/// NxtPort's scope style on the Entra endpoint: the client's own id followed
/// by `/.default` (a token for the client's own app registration, which
/// Entra grants any client).
pub const NXTPORT_ENTRA_SCOPE: &str = "5a1d2b3c-4e5f-4a6b-8c7d-9e0f1a2b3c4d/.default";

/// The Cognito demo client (NXTsoft style), allowed both transaction scopes.
pub const COGNITO_CLIENT_ID: &str = "5andb0xnxts0ftdem0c1ient01";
/// The secret of [`COGNITO_CLIENT_ID`] (sandbox only).
pub const COGNITO_CLIENT_SECRET: &str = "1q2w3e4r5t6y7u8i9o0pSandboxCognitoDemoSecretForNxtsoft";
/// A Cognito client allowed only `transactions/mock` (for `insufficient_scope`).
pub const COGNITO_MOCK_ONLY_CLIENT_ID: &str = "5andb0xnxts0ftm0ck0n1y0002";
/// The secret of [`COGNITO_MOCK_ONLY_CLIENT_ID`] (sandbox only).
pub const COGNITO_MOCK_ONLY_CLIENT_SECRET: &str =
    "0p9o8i7u6y5t4r3e2w1qSandboxCognitoMockOnlySecret";

/// Where the IdentityServer-style server lives under the sandbox's base URL
/// (Sequel's `AuthenticationServerUrl` includes such a virtual path).
pub const IDENTITYSERVER_VIRTUAL_PATH: &str = "/Authentication";
/// The IdentityServer demo client (Sequel style).
pub const IDENTITYSERVER_CLIENT_ID: &str = "sandbox.client";
/// The secret of [`IDENTITYSERVER_CLIENT_ID`] (sandbox only).
pub const IDENTITYSERVER_CLIENT_SECRET: &str = "PasswordInPlainText";

/// The DPoP demo client (Sequel style, at the IdentityServer endpoint): its
/// token requests must carry a DPoP proof (RFC 9449) with the sandbox's
/// nonce, and its tokens are `token_type: DPoP`, bound to the proof's key.
pub const DPOP_CLIENT_ID: &str = "sandbox.dpop.client";
/// The secret of [`DPOP_CLIENT_ID`] (sandbox only).
pub const DPOP_CLIENT_SECRET: &str = "sbx-DPoP-Demo-Secret-7e21c9a4";

/// The OIDC demo client (Apiture style: HTTP Basic from the discovery document).
pub const OIDC_CLIENT_ID: &str = "sandbox-oidc-client";
/// The secret of [`OIDC_CLIENT_ID`] (sandbox only). It holds characters that
/// RFC 6749 §2.3.1 makes the client form-urlencode before Base64.
pub const OIDC_CLIENT_SECRET: &str = "s3cret:with/reserved+chars%&=?";

/// Scope of NXTsoft's `POST /transactions/mock`.
pub const SCOPE_TRANSACTIONS_MOCK: &str = "transactions/mock";
/// Scope of NXTsoft's `POST /transactions`.
pub const SCOPE_TRANSACTIONS_POST: &str = "transactions/post";
/// Scope of the Cenda Configuration API at the non-Entra token endpoints.
pub const SCOPE_CENDA_CONFIGURATION: &str = "cenda/configuration";

/// The audience (`aud`) of tokens for the Cenda Configuration API.
pub const CENDA_AUDIENCE: &str = CENDA_GATEWAY_CLIENT_ID;
/// The audience (`aud`) of tokens for the NXTsoft transactions API.
pub const NXTSOFT_AUDIENCE: &str = "nxtsoft-transactions";

/// The application role Entra puts in Cenda tokens (`roles`).
pub(crate) const CENDA_APP_ROLE: &str = "Configuration.ReadWrite";

/// A NXTsoft transaction that every check of the sandbox's
/// `POST /transactions/mock` accepts (a builder: change a field to make a
/// check fail).
pub fn accepted_transaction()
-> crate::apis::nxtsoft_transactions::types::builder::TransactionRequest {
    use crate::apis::nxtsoft_transactions::types::{TransactionRequest, TransactionType};
    TransactionRequest::builder()
        .account_number("000123456789")
        .routing_number("021000021")
        .amount(125.5)
        .currency("USD")
        .transaction_type(TransactionType::Credit)
        .reference("INV-2024-0042")
}

/// The token-endpoint dialects the sandbox speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderStyle {
    /// Microsoft Entra ID v2 (Cenda, NxtPort): tenant in the path, `scope`
    /// `{resource}/.default`, AADSTS errors.
    Entra,
    /// AWS Cognito (NXTsoft): `/oauth2/token`, unknown scopes ignored, an
    /// empty scope grants all the client's scopes, errors `{"error": …}`.
    Cognito,
    /// Duende IdentityServer (Sequel): `{virtual path}/connect/token`,
    /// space-separated scopes, every error 400.
    IdentityServer,
    /// A generic OpenID provider found through discovery (Apiture): HTTP
    /// Basic, or Basic and the form body together.
    Oidc,
}

impl ProviderStyle {
    /// Every style, in a stable order.
    pub const ALL: [ProviderStyle; 4] = [
        ProviderStyle::Entra,
        ProviderStyle::Cognito,
        ProviderStyle::IdentityServer,
        ProviderStyle::Oidc,
    ];

    /// A short lowercase name (`entra`, `cognito`, `identityserver`, `oidc`).
    pub fn name(self) -> &'static str {
        match self {
            ProviderStyle::Entra => "entra",
            ProviderStyle::Cognito => "cognito",
            ProviderStyle::IdentityServer => "identityserver",
            ProviderStyle::Oidc => "oidc",
        }
    }
}

impl fmt::Display for ProviderStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A client registered in the sandbox.
pub(crate) struct RegisteredClient {
    pub(crate) style: ProviderStyle,
    pub(crate) id: &'static str,
    pub(crate) secret: &'static str,
    /// What the client may ask for. For Entra: the `.default` scopes of the
    /// resources it may call.
    pub(crate) scopes: &'static [&'static str],
    pub(crate) description: &'static str,
    /// Whether its token requests must carry a DPoP proof. (Any request to
    /// the IdentityServer or OIDC endpoint with a valid proof gets a
    /// DPoP-bound token, as Duende and oidc-provider do.)
    pub(crate) requires_dpop: bool,
}

pub(crate) const CLIENTS: [RegisteredClient; 6] = [
    RegisteredClient {
        style: ProviderStyle::Entra,
        id: ENTRA_CLIENT_ID,
        secret: ENTRA_CLIENT_SECRET,
        scopes: &[CENDA_ENTRA_SCOPE],
        description: "Cenda Configuration API via Entra ID (secret in the form body); also NxtPort style, `{client_id}/.default`",
        requires_dpop: false,
    },
    RegisteredClient {
        style: ProviderStyle::Cognito,
        id: COGNITO_CLIENT_ID,
        secret: COGNITO_CLIENT_SECRET,
        scopes: &[SCOPE_TRANSACTIONS_MOCK, SCOPE_TRANSACTIONS_POST],
        description: "NXTsoft via Cognito: validation messages and transactions",
        requires_dpop: false,
    },
    RegisteredClient {
        style: ProviderStyle::Cognito,
        id: COGNITO_MOCK_ONLY_CLIENT_ID,
        secret: COGNITO_MOCK_ONLY_CLIENT_SECRET,
        scopes: &[SCOPE_TRANSACTIONS_MOCK],
        description: "NXTsoft via Cognito: validation messages only",
        requires_dpop: false,
    },
    RegisteredClient {
        style: ProviderStyle::IdentityServer,
        id: IDENTITYSERVER_CLIENT_ID,
        secret: IDENTITYSERVER_CLIENT_SECRET,
        scopes: &[
            SCOPE_CENDA_CONFIGURATION,
            SCOPE_TRANSACTIONS_MOCK,
            SCOPE_TRANSACTIONS_POST,
        ],
        description: "IdentityServer (Sequel style): both APIs, space-separated scopes",
        requires_dpop: false,
    },
    RegisteredClient {
        style: ProviderStyle::IdentityServer,
        id: DPOP_CLIENT_ID,
        secret: DPOP_CLIENT_SECRET,
        scopes: &[SCOPE_TRANSACTIONS_MOCK, SCOPE_TRANSACTIONS_POST],
        description: "IdentityServer with DPoP required (RFC 9449): a proof with the sandbox's nonce, DPoP-bound tokens",
        requires_dpop: true,
    },
    RegisteredClient {
        style: ProviderStyle::Oidc,
        id: OIDC_CLIENT_ID,
        secret: OIDC_CLIENT_SECRET,
        scopes: &[
            SCOPE_TRANSACTIONS_MOCK,
            SCOPE_TRANSACTIONS_POST,
            SCOPE_CENDA_CONFIGURATION,
        ],
        description: "OIDC discovery (Apiture style): HTTP Basic with reserved characters",
        requires_dpop: false,
    },
];

/// The client id of the sandbox's federated client: an Entra application
/// with a federated credential and no secret (workload identity).
pub const FEDERATED_CLIENT_ID: &str = "7f3e2d1c-0b9a-4876-a5b4-c3d2e1f0fed1";
/// The subject of its federated credential: the workload's service account.
pub const FEDERATED_SUBJECT: &str = "system:serviceaccount:m2m-demo:workload";
/// The audience Entra expects in a federated token.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The path of the workload tokens' issuer (`{base}/workload`).
pub const WORKLOAD_ISSUER_PATH: &str = "/workload";

/// The federated client: its federated credential is the workload issuer
/// of the sandbox and [`FEDERATED_SUBJECT`]; it has no secret.
pub(crate) const FEDERATED_CLIENT: RegisteredClient = RegisteredClient {
    style: ProviderStyle::Entra,
    id: FEDERATED_CLIENT_ID,
    secret: "",
    scopes: &[CENDA_ENTRA_SCOPE],
    description: "Cenda via Entra ID with workload identity federation: a client assertion, no secret",
    requires_dpop: false,
};

/// The federated client registered under `id`.
pub(crate) fn find_federated_client(id: &str) -> Option<&'static RegisteredClient> {
    (id == FEDERATED_CLIENT.id).then_some(&FEDERATED_CLIENT)
}

/// The client id of the sandbox's mutual-TLS client (`tls_client_auth`,
/// RFC 8705 §2.1, at the OIDC endpoint): it has no secret and proves itself
/// with the client certificate the sandbox issued it
/// ([`Sandbox::mtls_client_identity`](super::Sandbox::mtls_client_identity)),
/// sent to the discovery document's `mtls_endpoint_aliases.token_endpoint`.
/// Its tokens are bound to that certificate (`cnf.x5t#S256`).
pub const MTLS_CLIENT_ID: &str = "sandbox-mtls-client";

/// The mutual-TLS client: no secret, both APIs.
pub(crate) const MTLS_CLIENT: RegisteredClient = RegisteredClient {
    style: ProviderStyle::Oidc,
    id: MTLS_CLIENT_ID,
    secret: "",
    scopes: &[
        SCOPE_TRANSACTIONS_MOCK,
        SCOPE_TRANSACTIONS_POST,
        SCOPE_CENDA_CONFIGURATION,
    ],
    description: "OIDC discovery with mutual TLS (tls_client_auth): the sandbox's client certificate, certificate-bound tokens",
    requires_dpop: false,
};

/// The client id of the sandbox's self-signed mutual-TLS client
/// (`self_signed_tls_client_auth`, RFC 8705 §2.2, at the OIDC endpoint): it
/// has no secret and proves itself with the self-signed certificate
/// registered for it
/// ([`Sandbox::mtls_self_signed_client_identity`](super::Sandbox::mtls_self_signed_client_identity)).
/// Its tokens are bound to that certificate (`cnf.x5t#S256`).
pub const MTLS_SELF_SIGNED_CLIENT_ID: &str = "sandbox-mtls-self-signed-client";

/// The self-signed mutual-TLS client: no secret, both APIs.
pub(crate) const MTLS_SELF_SIGNED_CLIENT: RegisteredClient = RegisteredClient {
    id: MTLS_SELF_SIGNED_CLIENT_ID,
    description: "OIDC discovery with mutual TLS (self_signed_tls_client_auth): a registered self-signed certificate, certificate-bound tokens",
    ..MTLS_CLIENT
};

/// The client registered under `id` for `style`.
pub(crate) fn find_client(style: ProviderStyle, id: &str) -> Option<&'static RegisteredClient> {
    CLIENTS
        .iter()
        .find(|client| client.style == style && client.id == id)
}

/// The API a scope grants access to, as its audience.
pub(crate) fn audience_of(scope: &str) -> Option<&'static str> {
    match scope {
        SCOPE_TRANSACTIONS_MOCK | SCOPE_TRANSACTIONS_POST => Some(NXTSOFT_AUDIENCE),
        SCOPE_CENDA_CONFIGURATION | CENDA_ENTRA_SCOPE => Some(CENDA_AUDIENCE),
        _ => None,
    }
}

/// A demo client as `m2m demo` prints it and tests use it.
///
/// The secret is a public, sandbox-only value, so it is a plain string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoClient {
    /// The token-endpoint dialect.
    pub style: ProviderStyle,
    /// The client id.
    pub client_id: &'static str,
    /// The client secret (sandbox only).
    pub client_secret: &'static str,
    /// The scopes it may request (for Entra, the `.default` scope).
    pub scopes: &'static [&'static str],
    /// The token endpoint to post to.
    pub token_url: String,
    /// What the client is for.
    pub description: &'static str,
}

impl DemoClient {
    /// The scopes space-separated, as the `scope` form parameter.
    pub fn scope_param(&self) -> String {
        self.scopes.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_scope_is_the_gateway_default_scope() {
        assert_eq!(
            CENDA_ENTRA_SCOPE,
            format!("{CENDA_GATEWAY_CLIENT_ID}/.default")
        );
    }

    #[test]
    fn every_client_scope_names_an_api() {
        let unknown: Vec<_> = CLIENTS
            .iter()
            .flat_map(|client| client.scopes.iter())
            .filter(|scope| audience_of(scope).is_none())
            .collect();
        assert_eq!(unknown, Vec::<&&str>::new());
        assert_eq!(
            find_client(ProviderStyle::Cognito, COGNITO_CLIENT_ID).map(|c| c.secret),
            Some(COGNITO_CLIENT_SECRET)
        );
        assert!(find_client(ProviderStyle::Entra, COGNITO_CLIENT_ID).is_none());
    }
}
