//! Roles and permissions (SPEC §10): a permission is `resource:action` (action `*`: every
//! action on the resource), a role a named set of them, held app-wide by users and by OAuth
//! clients. What a holder may do is the union of its roles' permissions: role definitions and
//! client grants are cached with the app's issuer ([`RoleBook`]), so a token reads at most a
//! user's role names (`repo::roles_of`, `orgs::member_roles`).

/// The names among `$roles` that are no role of the app, read through `$conn` (a transaction),
/// for the calls that grant roles (`repo::set_roles`, `orgs::add_member`).
macro_rules! unknown_roles {
    ($conn:expr, $roles:expr) => {{
        let mut unknown = Vec::new();
        for r in $roles {
            let found: Option<String> = sqlx::query_scalar("SELECT name FROM roles WHERE name = $1")
                .bind(r)
                .fetch_optional(&mut *$conn)
                .await?;
            if found.is_none() {
                unknown.push(r.clone());
            }
        }
        unknown
    }};
}

pub mod orgs;
pub mod repo;
pub mod resources;

use serde::{Deserialize, Serialize};

/// The most permissions a role may list.
pub const MAX_ROLE_PERMISSIONS: usize = 500;
/// The most permissions an access token carries; beyond, it carries none and says so with
/// `permissions_omitted` (introspection still returns them all).
pub const MAX_TOKEN_PERMISSIONS: usize = 100;

/// Whether `p` is a permission: `^[a-z0-9_.-]+:[a-z0-9_.*-]+$` (the body limit bounds its
/// length).
pub fn valid_permission(p: &str) -> bool {
    let Some((resource, action)) = p.split_once(':') else { return false };
    let part = |s: &str, star: bool| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b) || (star && b == b'*')
            })
    };
    part(resource, false) && part(action, true)
}

/// Whether `name` is a role name: 1 to 64 of `a-z 0-9 _ . -`.
pub fn valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// Checks and normalises a permission list (sorted, without repeats); the error names the
/// first bad entry.
pub fn clean_permissions(list: &[String]) -> Result<Vec<String>, String> {
    if list.len() > MAX_ROLE_PERMISSIONS {
        return Err(format!("at most {MAX_ROLE_PERMISSIONS} permissions"));
    }
    if let Some(bad) = list.iter().find(|p| !valid_permission(p)) {
        return Err(format!("{bad:?} is not a permission (resource:action, lower case)"));
    }
    let mut out = list.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// A role of an app.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub permissions: sqlx::types::Json<Vec<String>>,
    pub created_at: crate::store::Ts,
    pub updated_at: crate::store::Ts,
}

/// The app's role definitions and client grants, loaded with its issuer (and reloaded when they
/// change), so a token needs at most one query for its holder's role names and none for
/// permissions or for a client.
#[derive(Debug, Clone, Default)]
pub struct RoleBook {
    /// Role name → its permissions.
    pub roles: std::collections::HashMap<String, Vec<String>>,
    /// Client id → its role names.
    pub clients: std::collections::HashMap<String, Vec<String>>,
}

impl RoleBook {
    /// Loads the book from the app's identity store (two queries, at issuer load).
    pub async fn load(db: &crate::store::IdentityDb) -> Result<RoleBook, sqlx::Error> {
        let roles: Vec<(String, sqlx::types::Json<Vec<String>>)> =
            crate::on_db!(db, p => sqlx::query_as("SELECT name, permissions FROM roles").fetch_all(p).await)?;
        let grants: Vec<(String, String)> = crate::on_db!(db, p => sqlx::query_as("SELECT client_id, role FROM client_roles").fetch_all(p).await)?;
        let mut book =
            RoleBook { roles: roles.into_iter().map(|(n, p)| (n, p.0)).collect(), ..RoleBook::default() };
        for (client, role) in grants {
            book.clients.entry(client).or_default().push(role);
        }
        Ok(book)
    }

    /// What these role names grant (names the book does not know, for a role created since it
    /// was loaded, count without permissions until the reload).
    pub fn grants(&self, names: &[String]) -> Grants {
        let rows = names
            .iter()
            .map(|n| (n.clone(), sqlx::types::Json(self.roles.get(n).cloned().unwrap_or_default())))
            .collect();
        Grants::from_rows(rows)
    }
}

/// What a holder's roles grant: role names and the union of their permissions, both sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

impl Grants {
    /// Builds the grants from `(role, permissions)` rows.
    pub fn from_rows(rows: Vec<(String, sqlx::types::Json<Vec<String>>)>) -> Grants {
        let mut g = Grants::default();
        for (role, perms) in rows {
            g.roles.push(role);
            g.permissions.extend(perms.0);
        }
        g.roles.sort();
        g.roles.dedup();
        g.permissions.sort();
        g.permissions.dedup();
        g
    }

    /// The permissions to put in a token, or `None` when there are too many (the token then
    /// says `permissions_omitted`).
    pub fn token_permissions(&self) -> Option<Vec<String>> {
        (self.permissions.len() <= MAX_TOKEN_PERMISSIONS).then(|| self.permissions.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_and_role_names() {
        for ok in ["invoices:read", "invoices:*", "a.b-c_d:x.y-z", "api:read"] {
            assert!(valid_permission(ok), "{ok}");
        }
        for bad in
            ["invoices", ":read", "invoices:", "Invoices:read", "in voices:read", "a:b:c", "*:read", "é:read"]
        {
            assert!(!valid_permission(bad), "{bad}");
        }
        assert!(valid_role_name("org_admin") && valid_role_name("system.admin-2"));
        assert!(!valid_role_name("") && !valid_role_name("Admin") && !valid_role_name(&"a".repeat(65)));
        assert_eq!(
            clean_permissions(&["b:x".into(), "a:y".into(), "b:x".into()]),
            Ok(vec!["a:y".to_string(), "b:x".to_string()])
        );
        assert!(clean_permissions(&["nope".into()]).expect_err("refused").contains("\"nope\""));
    }

    #[test]
    fn grants_union_and_cap() {
        let rows = vec![
            ("b".to_string(), sqlx::types::Json(vec!["x:read".to_string(), "y:*".to_string()])),
            ("a".to_string(), sqlx::types::Json(vec!["x:read".to_string()])),
        ];
        let g = Grants::from_rows(rows);
        assert_eq!(g.roles, ["a", "b"]);
        assert_eq!(g.permissions, ["x:read", "y:*"]);
        assert!(g.token_permissions().is_some());
        let many = Grants {
            roles: vec![],
            permissions: (0..=MAX_TOKEN_PERMISSIONS).map(|i| format!("r:{i}")).collect(),
        };
        assert_eq!(many.token_permissions(), None);
    }
}
