//! `/organization`: the chooser a client gets with `organization=select` when the signed-in
//! user belongs to several organizations (SPEC §10). The choice completes the pending
//! authorization request with a code for that organization.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::account::{SignedIn, base, csrf_for, current_session, with_cookie};
use super::handlers::{Visit, clean_request_id, request_id};
use crate::grants::requests as authorize;
use crate::roles::orgs;
use crate::state::AppState;
use crate::tenant::Issuer;
use crate::web::{OrPage, PageError};

fn expired(state: &AppState, issuer: &Issuer) -> Response {
    state.pages.message(
        StatusCode::BAD_REQUEST,
        Some(&issuer.app),
        "Sign-in expired",
        "This sign-in request has expired or was already answered. Go back to the application and start again.",
    )
}

/// Whether `p` waits on the chooser for this session: a request that asked for `select` and
/// was sent here by the code issuance for this very session (so no other request, and no
/// session that did not just sign in for it, can be answered from here).
fn for_chooser(p: &authorize::AuthRequest, session: &crate::sessions::Session) -> bool {
    p.organization.as_deref() == Some("select") && p.chooser_session.as_deref() == Some(session.id.as_str())
}

pub async fn get_chooser(
    State(state): State<AppState>,
    Visit { issuer, query, headers }: Visit,
) -> Result<Response, PageError> {
    show(&state, &issuer, &headers, &request_id(query.as_deref())).await
}

async fn show(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    request: &str,
) -> Result<Response, PageError> {
    let slug = issuer.app.slug.as_str();
    let Some(session) = current_session(state, issuer, headers).await.or_page(issuer)? else {
        return Ok(Redirect::to(&format!("{}/login?request={request}", base(state, slug))).into_response());
    };
    let pending = authorize::pending(&issuer.identity, request, state.now()).await.or_page(issuer)?;
    if !pending.is_some_and(|p| for_chooser(&p, &session)) {
        return Ok(expired(state, issuer));
    }
    let user = crate::users::get(&issuer.identity, session.user_id).await.or_page(issuer)?;
    let mine = orgs::of_user(&issuer.identity, session.user_id).await.or_page(issuer)?;
    let organizations: Vec<minijinja::Value> = mine
        .into_iter()
        .map(|o| context! { id => o.id.to_string(), slug => o.slug, name => o.name })
        .collect();
    let (csrf, set) = csrf_for(state, headers, slug);
    let ctx = context! {
        base => base(state, slug), csrf, request_id => request, organizations,
        email => user.map(|u| u.email).unwrap_or_default(),
    };
    let res = state.pages.render(StatusCode::OK, Some(&issuer.app), "organization.html", ctx);
    Ok(match set {
        Some(c) => with_cookie(res, c),
        None => res,
    })
}

/// The choice: only an organization the user belongs to; then the code for the request.
pub async fn post_chooser(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    let SignedIn { issuer, session, form, headers, .. } = me;
    let request = clean_request_id(form.get("request").unwrap_or(""));
    let chosen = form.get("organization").and_then(|o| uuid::Uuid::parse_str(o).ok());
    let now = state.now();
    let pending = authorize::pending(&issuer.identity, &request, now).await.or_page(&issuer)?;
    let Some(pending) = pending.filter(|p| for_chooser(p, &session)) else {
        return Ok(expired(&state, &issuer));
    };
    let member = match chosen {
        Some(o) => orgs::is_member(&issuer.identity, o, session.user_id).await.or_page(&issuer)?,
        None => false,
    };
    let (Some(org), true) = (chosen, member) else {
        let mut res = show(&state, &issuer, &headers, &request).await?;
        *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(res);
    };
    let id = org.to_string();
    authorize::choose_organization(&issuer.identity, &pending.id, &id).await.or_page(&issuer)?;
    let pending = authorize::AuthRequest { organization: Some(id), ..pending };
    let to = authorize::issue_code(&issuer.identity, &issuer.url, &pending, &session, now)
        .await
        .or_page(&issuer)?;
    Ok(Redirect::to(&to).into_response())
}
