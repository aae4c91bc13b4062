//! The CORS origins of an app: the origins of its clients' `http(s)` redirect URIs
//! (`oidc::cors` applies them; the set is computed when the issuer is built).

use std::collections::HashSet;

use crate::clients::Client;

/// The origins a browser app of these clients can call from (see the module header).
pub fn allowed_origins<'a>(clients: impl IntoIterator<Item = &'a Client>) -> HashSet<String> {
    clients
        .into_iter()
        .flat_map(|c| c.redirect_uris.iter())
        .filter_map(|u| url::Url::parse(u.as_str()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::{AuthMethod, ClientId, GrantType, RedirectUri};

    fn client(uris: &[&str]) -> Client {
        Client {
            id: uuid::Uuid::nil(),
            app_id: uuid::Uuid::nil(),
            client_id: ClientId("c".into()),
            name: "c".into(),
            redirect_uris: uris.iter().map(|u| RedirectUri::try_from(u.to_string()).expect("uri")).collect(),
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            token_endpoint_auth_method: AuthMethod::None,
            scopes: vec![],
            secret_hash: None,
            created_at: crate::store::Ts::new(chrono::Utc::now()),
            updated_at: crate::store::Ts::new(chrono::Utc::now()),
        }
    }

    #[test]
    fn origins_of_http_redirect_uris_only() {
        let a = client(&[
            "https://App.Example.com/cb?x=1",
            "https://app.example.com:443/other",
            "https://app.example.com:8443/cb",
            "http://localhost:3000/cb",
            "http://[::1]/cb",
            "com.example.app:/oauth2redirect",
        ]);
        let b = client(&["https://other.example/cb"]);
        let got = allowed_origins([&a, &b]);
        let want: HashSet<String> = [
            "https://app.example.com",
            "https://app.example.com:8443",
            "http://localhost:3000",
            "http://[::1]",
            "https://other.example",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(got, want);
    }
}
