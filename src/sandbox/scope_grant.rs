//! Which scopes, audiences and roles a token request is granted, by the
//! rules of each provider's dialect.

use super::demo::{self, ProviderStyle, RegisteredClient};
use super::refusal::Refusal;

pub(crate) struct GrantedScopes {
    pub(crate) scopes: Vec<String>,
    pub(crate) audiences: Vec<&'static str>,
    pub(crate) roles: Vec<String>,
}

pub(crate) fn grant_scopes(
    style: ProviderStyle,
    client: &RegisteredClient,
    requested: Option<&str>,
) -> Result<GrantedScopes, Refusal> {
    let requested: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if style == ProviderStyle::Entra {
        return entra_scope(client, &requested);
    }
    let mut scopes: Vec<String> = Vec::new();
    if requested.is_empty() {
        scopes.extend(client.scopes.iter().map(|s| (*s).to_owned()));
    }
    for scope in requested {
        if client.scopes.contains(&scope) {
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        } else if style == ProviderStyle::IdentityServer {
            // IdentityServer refuses what Cognito and the OIDC provider drop.
            return Err(Refusal::ScopeNotAllowed(scope.to_owned()));
        }
    }
    if scopes.is_empty() {
        return Err(Refusal::NoScopeGranted);
    }
    let mut audiences = Vec::new();
    for audience in scopes.iter().filter_map(|scope| demo::audience_of(scope)) {
        if !audiences.contains(&audience) {
            audiences.push(audience);
        }
    }
    Ok(GrantedScopes {
        scopes,
        audiences,
        roles: Vec::new(),
    })
}

/// Entra: exactly one `{resource}/.default` scope, for a resource the
/// client may call; the token carries the app's roles, not scopes.
fn entra_scope(client: &RegisteredClient, requested: &[&str]) -> Result<GrantedScopes, Refusal> {
    let scope = match requested {
        [] => return Err(Refusal::MissingParameter("scope")),
        [scope] => *scope,
        several => return Err(Refusal::ScopeNotAllowed(several.join(" "))),
    };
    let resource = scope
        .strip_suffix("/.default")
        .ok_or_else(|| Refusal::ScopeNotDefault(scope.to_owned()))?;
    let resource_id = resource.strip_prefix("api://").unwrap_or(resource);
    let normalised = format!("{resource_id}/.default");
    if resource_id == client.id {
        // A token for the client's own app registration (NxtPort's
        // `{client_id}/.default`): Entra grants it to any client.
        return Ok(GrantedScopes {
            scopes: Vec::new(),
            audiences: vec![client.id],
            roles: Vec::new(),
        });
    }
    let audience = demo::audience_of(&normalised)
        .ok_or_else(|| Refusal::UnknownResource(resource.to_owned()))?;
    if !client.scopes.contains(&normalised.as_str()) {
        return Err(Refusal::ScopeNotAllowed(scope.to_owned()));
    }
    Ok(GrantedScopes {
        scopes: Vec::new(),
        audiences: vec![audience],
        roles: vec![demo::CENDA_APP_ROLE.to_owned()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_rules_differ_by_dialect() {
        let cognito = demo::find_client(ProviderStyle::Cognito, demo::COGNITO_CLIENT_ID).unwrap();
        let all = grant_scopes(ProviderStyle::Cognito, cognito, None).unwrap();
        assert_eq!(all.scopes, vec!["transactions/mock", "transactions/post"]);
        assert_eq!(all.audiences, vec![demo::NXTSOFT_AUDIENCE]);
        let dropped = grant_scopes(
            ProviderStyle::Cognito,
            cognito,
            Some("unknown transactions/mock"),
        )
        .unwrap();
        assert_eq!(dropped.scopes, vec!["transactions/mock"]);
        assert!(matches!(
            grant_scopes(ProviderStyle::Cognito, cognito, Some("unknown")),
            Err(Refusal::NoScopeGranted)
        ));

        let is = demo::find_client(
            ProviderStyle::IdentityServer,
            demo::IDENTITYSERVER_CLIENT_ID,
        )
        .unwrap();
        assert!(matches!(
            grant_scopes(ProviderStyle::IdentityServer, is, Some("transactions/mock unknown")),
            Err(Refusal::ScopeNotAllowed(scope)) if scope == "unknown"
        ));
        let both = grant_scopes(
            ProviderStyle::IdentityServer,
            is,
            Some("cenda/configuration transactions/mock"),
        )
        .unwrap();
        assert_eq!(
            both.audiences,
            vec![demo::CENDA_AUDIENCE, demo::NXTSOFT_AUDIENCE]
        );

        let entra = demo::find_client(ProviderStyle::Entra, demo::ENTRA_CLIENT_ID).unwrap();
        let api_uri = format!("api://{}", demo::CENDA_ENTRA_SCOPE);
        assert_eq!(
            grant_scopes(ProviderStyle::Entra, entra, Some(&api_uri))
                .unwrap()
                .audiences,
            vec![demo::CENDA_AUDIENCE]
        );
        assert!(matches!(
            grant_scopes(
                ProviderStyle::Entra,
                entra,
                Some(demo::CENDA_GATEWAY_CLIENT_ID)
            ),
            Err(Refusal::ScopeNotDefault(_))
        ));
        assert!(matches!(
            grant_scopes(ProviderStyle::Entra, entra, Some("other/.default")),
            Err(Refusal::UnknownResource(resource)) if resource == "other"
        ));
    }
}
