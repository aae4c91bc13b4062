//! Organizations and memberships (SPEC §10): an app's customer organizations, their members
//! and each member's roles there. A token for an organization carries `org_id`, `org_roles`
//! and the permissions of those roles too.

use uuid::Uuid;

use super::repo::{Changed, RoleError};
use crate::on_db;
use crate::store::{BeginWrite, IdentityDb, Ts, is_unique_violation};
use crate::users::UserId;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Organization {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: Ts,
}

/// A member as listed: who, since when, with which roles in the organization.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub roles: Vec<String>,
    pub created_at: Ts,
}

/// An organization slug: 1 to 63 of `a-z 0-9 -`, starting with a letter or digit, not `select`
/// (the chooser's keyword) and not shaped like an id (ids are looked up first).
pub fn valid_slug(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s != "select"
        && Uuid::parse_str(s).is_err()
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

const COLUMNS: &str = "id, slug, name, created_at";

pub async fn list(
    db: &IdentityDb,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Organization>, sqlx::Error> {
    match after {
        Some(a) => {
            let sql = format!("SELECT {COLUMNS} FROM organizations WHERE id > $1 ORDER BY id LIMIT $2");
            on_db!(db, p => sqlx::query_as(&sql).bind(a).bind(limit).fetch_all(p).await)
        }
        None => {
            let sql = format!("SELECT {COLUMNS} FROM organizations ORDER BY id LIMIT $1");
            on_db!(db, p => sqlx::query_as(&sql).bind(limit).fetch_all(p).await)
        }
    }
}

/// The organization with this id or slug.
pub async fn find(db: &IdentityDb, id_or_slug: &str) -> Result<Option<Organization>, sqlx::Error> {
    match Uuid::parse_str(id_or_slug) {
        Ok(id) => {
            let sql = format!("SELECT {COLUMNS} FROM organizations WHERE id = $1");
            on_db!(db, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)
        }
        Err(_) if id_or_slug.len() <= 63 => {
            let sql = format!("SELECT {COLUMNS} FROM organizations WHERE slug = $1");
            on_db!(db, p => sqlx::query_as(&sql).bind(id_or_slug).fetch_optional(p).await)
        }
        Err(_) => Ok(None),
    }
}

pub async fn create(db: &IdentityDb, slug: &str, name: &str, now: Ts) -> Result<Organization, RoleError> {
    let id = Uuid::now_v7();
    let sql = "INSERT INTO organizations (id, slug, name, created_at) VALUES ($1, $2, $3, $4)";
    let res = on_db!(db, p => sqlx::query(sql).bind(id).bind(slug).bind(name).bind(now).execute(p).await.map(|_| ()));
    match res {
        Ok(()) => find(db, &id.to_string()).await?.ok_or(RoleError::Store(sqlx::Error::RowNotFound)),
        Err(e) if is_unique_violation(&e) => Err(RoleError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

pub async fn update(
    db: &IdentityDb,
    id: Uuid,
    slug: Option<&str>,
    name: Option<&str>,
) -> Result<Option<Organization>, RoleError> {
    let Some(o) = find(db, &id.to_string()).await? else { return Ok(None) };
    let sql = "UPDATE organizations SET slug = $2, name = $3 WHERE id = $1";
    let res = on_db!(db, p => sqlx::query(sql).bind(id).bind(slug.unwrap_or(&o.slug)).bind(name.unwrap_or(&o.name))
        .execute(p).await.map(|_| ()));
    match res {
        Ok(()) => Ok(find(db, &id.to_string()).await?),
        Err(e) if is_unique_violation(&e) => Err(RoleError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// Deletes an organization with its memberships, in one transaction; how many members it had,
/// or `None` if there was none.
pub async fn delete(db: &IdentityDb, id: Uuid, now: Ts) -> Result<Option<u64>, sqlx::Error> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM membership_roles WHERE organization_id = $1").bind(id).execute(&mut *tx).await?;
        let members = sqlx::query("DELETE FROM memberships WHERE organization_id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        sqlx::query("UPDATE invitations SET revoked_at = $2 WHERE organization_id = $1 AND used_at IS NULL AND revoked_at IS NULL").bind(id).bind(now).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM organizations WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(members))
    })
}

/// Members by user id, after the cursor, with their roles there.
pub async fn members(
    db: &IdentityDb,
    org: Uuid,
    after: Option<UserId>,
    limit: i64,
) -> Result<Vec<Member>, sqlx::Error> {
    let after = after.unwrap_or(UserId(Uuid::nil()));
    let sql = "SELECT m.user_id, m.created_at, u.email, mr.role FROM \
        (SELECT user_id, created_at FROM memberships WHERE organization_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3) m \
        JOIN users u ON u.id = m.user_id \
        LEFT JOIN membership_roles mr ON mr.organization_id = $1 AND mr.user_id = m.user_id \
        ORDER BY m.user_id, mr.role";
    let rows: Vec<(UserId, Ts, String, Option<String>)> =
        on_db!(db, p => sqlx::query_as(sql).bind(org).bind(after).bind(limit).fetch_all(p).await)?;
    let mut out: Vec<Member> = Vec::new();
    for (user_id, created_at, email, role) in rows {
        if out.last().is_none_or(|m| m.user_id != user_id) {
            out.push(Member { user_id, email, roles: Vec::new(), created_at });
        }
        if let (Some(r), Some(m)) = (role, out.last_mut()) {
            m.roles.push(r);
        }
    }
    Ok(out)
}

/// Adds `user` to the organization with `roles` (or, if a member already, sets the roles); says
/// whether the membership is new and what changed.
pub async fn add_member(
    db: &IdentityDb,
    org: Uuid,
    user: UserId,
    roles: &[String],
    now: Ts,
) -> Result<(bool, Changed), RoleError> {
    let mut wanted = roles.to_vec();
    wanted.sort();
    wanted.dedup();
    let insert = "INSERT INTO memberships (user_id, organization_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    let done: Result<(bool, Changed), RoleError> = on_db!(db, p => async {
        let mut tx = p.begin_write().await?;
        let unknown = unknown_roles!(tx, &wanted);
        if !unknown.is_empty() {
            return Err(RoleError::Unknown(unknown));
        }
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM memberships WHERE user_id = $1 AND organization_id = $2")
            .bind(user).bind(org).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            sqlx::query(insert).bind(user).bind(org).bind(now).execute(&mut *tx).await?;
        }
        let current: Vec<String> = sqlx::query_scalar("SELECT role FROM membership_roles WHERE user_id = $1 AND organization_id = $2")
            .bind(user).bind(org).fetch_all(&mut *tx).await?;
        let mut changed = Changed::default();
        for r in wanted.iter().filter(|r| !current.contains(r)) {
            sqlx::query("INSERT INTO membership_roles (user_id, organization_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(user).bind(org).bind(r).execute(&mut *tx).await?;
            changed.granted.push(r.clone());
        }
        for r in current.iter().filter(|r| !wanted.contains(r)) {
            sqlx::query("DELETE FROM membership_roles WHERE user_id = $1 AND organization_id = $2 AND role = $3")
                .bind(user).bind(org).bind(r).execute(&mut *tx).await?;
            changed.revoked.push(r.clone());
        }
        tx.commit().await?;
        changed.revoked.sort();
        Ok((exists.is_none(), changed))
    }
    .await);
    done
}

/// Whether `user` is a member (for setting roles on existing members only).
pub async fn is_member(db: &IdentityDb, org: Uuid, user: UserId) -> Result<bool, sqlx::Error> {
    let sql = "SELECT 1 FROM memberships WHERE user_id = $1 AND organization_id = $2";
    let found: Option<i32> =
        on_db!(db, p => sqlx::query_scalar(sql).bind(user).bind(org).fetch_optional(p).await)?;
    Ok(found.is_some())
}

/// Removes a membership; false if there was none.
pub async fn remove_member(db: &IdentityDb, org: Uuid, user: UserId) -> Result<bool, sqlx::Error> {
    on_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM membership_roles WHERE user_id = $1 AND organization_id = $2").bind(user).bind(org).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND organization_id = $2").bind(user).bind(org).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    })
}

/// The organizations `user` belongs to, by name.
pub async fn of_user(db: &IdentityDb, user: UserId) -> Result<Vec<Organization>, sqlx::Error> {
    let sql = "SELECT o.id, o.slug, o.name, o.created_at FROM memberships m JOIN organizations o ON o.id = m.organization_id \
        WHERE m.user_id = $1 ORDER BY o.name, o.id";
    on_db!(db, p => sqlx::query_as(sql).bind(user).fetch_all(p).await)
}

/// `user`'s role names in the organization, in one query; `None` if not a member.
pub async fn member_roles(
    db: &IdentityDb,
    org: Uuid,
    user: UserId,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let sql = "SELECT mr.role FROM memberships m LEFT JOIN membership_roles mr \
        ON mr.user_id = m.user_id AND mr.organization_id = m.organization_id \
        WHERE m.user_id = $1 AND m.organization_id = $2";
    let rows: Vec<Option<String>> =
        on_db!(db, p => sqlx::query_scalar(sql).bind(user).bind(org).fetch_all(p).await)?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(rows.into_iter().flatten().collect()))
}
