//! `latchkey role|org|resource …`: roles and grants, organizations and their members, API
//! resources (SPEC §10), over the admin API.

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

use super::{Api, Remote};

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Define a role: `--permission invoices:read --permission invoices:*`.
    Create {
        app: String,
        name: String,
        #[arg(long = "permission", value_name = "RESOURCE:ACTION")]
        permissions: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the app's roles.
    List { app: String },
    /// Delete a role (its grants go with it).
    Delete { app: String, name: String },
    /// Set the complete list of roles of a user (`--user ID`) or a client (`--client ID`).
    Grant {
        app: String,
        #[arg(long, conflicts_with = "client", required_unless_present = "client")]
        user: Option<String>,
        #[arg(long)]
        client: Option<String>,
        roles: Vec<String>,
    },
}

const ROLE_COLUMNS: &[&str] = &["name", "permissions", "description"];

pub async fn role(remote: &Remote, cmd: RoleCmd) -> anyhow::Result<()> {
    let api = Api::new(remote)?;
    match cmd {
        RoleCmd::Create { app, name, permissions, description } => {
            let body = json!({"name": name, "permissions": permissions, "description": description});
            let r = api.post(&format!("/apps/{app}/roles"), body).await?;
            api.show_one(&r, ROLE_COLUMNS);
        }
        RoleCmd::List { app } => {
            let items = api.all(&format!("/apps/{app}/roles")).await?;
            api.show_table(&items, ROLE_COLUMNS);
        }
        RoleCmd::Delete { app, name } => {
            let r =
                api.call(reqwest::Method::DELETE, &format!("/apps/{app}/roles/{}", enc(&name)), None).await?;
            api.show_one(&r, &["name", "users_revoked", "clients_revoked", "members_revoked"]);
        }
        RoleCmd::Grant { app, user, client, roles } => {
            let path = match (user, client) {
                (Some(u), None) => format!("/apps/{app}/users/{}/roles", enc(&u)),
                (None, Some(c)) => format!("/apps/{app}/clients/{}/roles", enc(&c)),
                _ => bail!("give --user or --client"),
            };
            let r = api.call(reqwest::Method::PUT, &path, Some(json!({ "roles": roles }))).await?;
            api.show_one(&r, &["roles", "granted", "revoked"]);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    /// Create an organization.
    Create {
        app: String,
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// List the app's organizations.
    List { app: String },
    /// Delete an organization (its memberships go with it).
    Delete { app: String, id: String },
    /// List an organization's members.
    Members { app: String, id: String },
    /// Add a member by user id or address (an address without an account is invited), with
    /// roles in the organization: `--role org_admin`.
    Add {
        app: String,
        id: String,
        #[arg(long, conflicts_with = "email", required_unless_present = "email")]
        user: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Remove a member.
    Remove { app: String, id: String, user: String },
}

const ORG_COLUMNS: &[&str] = &["id", "slug", "name", "created_at"];
const MEMBER_COLUMNS: &[&str] = &["user_id", "email", "roles", "created_at"];

pub async fn org(remote: &Remote, cmd: OrgCmd) -> anyhow::Result<()> {
    let api = Api::new(remote)?;
    match cmd {
        OrgCmd::Create { app, slug, name } => {
            let o =
                api.post(&format!("/apps/{app}/organizations"), json!({"slug": slug, "name": name})).await?;
            api.show_one(&o, ORG_COLUMNS);
        }
        OrgCmd::List { app } => {
            let items = api.all(&format!("/apps/{app}/organizations")).await?;
            api.show_table(&items, ORG_COLUMNS);
        }
        OrgCmd::Delete { app, id } => {
            api.call(reqwest::Method::DELETE, &format!("/apps/{app}/organizations/{}", enc(&id)), None)
                .await?;
            println!("deleted organization {id}");
        }
        OrgCmd::Members { app, id } => {
            let items = api.all(&format!("/apps/{app}/organizations/{}/members", enc(&id))).await?;
            api.show_table(&items, MEMBER_COLUMNS);
        }
        OrgCmd::Add { app, id, user, email, roles } => {
            let body = match (user, email) {
                (Some(u), None) => json!({"user_id": u, "roles": roles}),
                (None, Some(e)) => json!({"email": e, "roles": roles}),
                _ => bail!("give --user or --email"),
            };
            let r = api.post(&format!("/apps/{app}/organizations/{}/members", enc(&id)), body).await?;
            if r.get("invitation_id").is_some() {
                api.show_one(&r, &["invitation_id", "email", "link"]);
            } else {
                api.show_one(&r, MEMBER_COLUMNS);
            }
        }
        OrgCmd::Remove { app, id, user } => {
            let path = format!("/apps/{app}/organizations/{}/members/{}", enc(&id), enc(&user));
            api.call(reqwest::Method::DELETE, &path, None).await?;
            println!("removed {user} from organization {id}");
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ResourceCmd {
    /// Register an API resource (RFC 8707) by its absolute URI.
    Create {
        app: String,
        identifier: String,
        #[arg(long)]
        name: String,
        #[arg(long = "permission", value_name = "RESOURCE:ACTION")]
        permissions: Vec<String>,
    },
    /// List the app's resources.
    List { app: String },
    /// Delete a resource.
    Delete { app: String, id: String },
}

const RESOURCE_COLUMNS: &[&str] = &["id", "identifier", "name", "permissions"];

pub async fn resource(remote: &Remote, cmd: ResourceCmd) -> anyhow::Result<()> {
    let api = Api::new(remote)?;
    match cmd {
        ResourceCmd::Create { app, identifier, name, permissions } => {
            let body = json!({"identifier": identifier, "name": name, "permissions": permissions});
            let r = api.post(&format!("/apps/{app}/resources"), body).await?;
            api.show_one(&r, RESOURCE_COLUMNS);
        }
        ResourceCmd::List { app } => {
            let items = api.all(&format!("/apps/{app}/resources")).await?;
            api.show_table(&items, RESOURCE_COLUMNS);
        }
        ResourceCmd::Delete { app, id } => {
            api.call(reqwest::Method::DELETE, &format!("/apps/{app}/resources/{}", enc(&id)), None).await?;
            println!("deleted resource {id}");
        }
    }
    Ok(())
}
