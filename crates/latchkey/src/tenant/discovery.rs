//! Discovery documents: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2. The advertised
//! algorithm is the one the current key signs with (a changed `signing_alg` applies at the next
//! rotation).

use serde_json::{Value, json};

use crate::keys::SigningAlg;

/// Endpoints and capabilities shared by both documents.
fn common(issuer: &str) -> serde_json::Map<String, Value> {
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "phone", "offline_access", "roles"],
        // RFC 9207: authorization responses carry `iss`.
        "authorization_response_iss_parameter_supported": true,
    });
    match doc {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

pub fn openid_configuration(issuer: &str, alg: SigningAlg) -> Value {
    let mut doc = common(issuer);
    doc.insert("subject_types_supported".into(), json!(["public"]));
    doc.insert("id_token_signing_alg_values_supported".into(), json!([alg.as_str()]));
    doc.insert(
        "claims_supported".into(),
        json!([
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "sid",
            "amr",
            "at_hash",
            "email",
            "email_verified",
            "roles",
            "org_id",
            "org_roles",
            "name",
            "given_name",
            "family_name",
            "nickname",
            "locale",
            "birthdate",
            "phone_number"
        ]),
    );
    doc.insert("claims_parameter_supported".into(), json!(false));
    doc.insert("request_parameter_supported".into(), json!(false));
    doc.insert("request_uri_parameter_supported".into(), json!(false));
    Value::Object(doc)
}

pub fn oauth_metadata(issuer: &str) -> Value {
    Value::Object(common(issuer))
}
