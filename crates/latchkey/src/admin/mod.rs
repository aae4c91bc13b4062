//! The operator API under `/admin/v1` (SPEC §4). Translates HTTP into calls on the `apps`,
//! `clients` and `keys` services; owns no logic of its own beyond authentication and shapes.
//! The OpenAPI document is generated from the same handler annotations that route requests.

pub mod auth;
pub mod error;
mod extract;
mod handlers;
mod invitations;
mod orgs;
mod people;
mod roles;
mod tokens;
pub mod views;

pub use auth::AdminTokens;
pub use error::ApiError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Latchkey admin API", description = "Operate apps, clients and signing keys."),
    modifiers(&BearerAuth),
    security(("admin_token" = [])),
    tags((name = "apps"), (name = "clients"), (name = "keys"), (name = "users"), (name = "roles"), (name = "organizations"), (name = "tokens"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The admin router and the OpenAPI document describing exactly its routes.
fn split() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::create_app, handlers::list_apps))
        .routes(routes!(handlers::get_app, handlers::update_app, handlers::delete_app))
        .routes(routes!(handlers::enable_app))
        .routes(routes!(handlers::disable_app))
        .routes(routes!(handlers::app_health))
        .routes(routes!(handlers::create_client, handlers::list_clients))
        .routes(routes!(handlers::get_client, handlers::update_client, handlers::delete_client))
        .routes(routes!(handlers::rotate_client_secret))
        .routes(routes!(handlers::list_keys))
        .routes(routes!(handlers::rotate_keys))
        .routes(routes!(invitations::create_invitation, invitations::list_invitations))
        .routes(routes!(invitations::revoke_invitation))
        .routes(routes!(people::list_users))
        .routes(routes!(people::get_user, people::erase_user))
        .routes(routes!(people::list_sessions))
        .routes(routes!(people::revoke_session))
        .routes(routes!(people::logout_all))
        .routes(routes!(people::reset_mfa))
        .routes(routes!(people::audit))
        .routes(routes!(people::approve_user))
        .routes(routes!(people::reject_user))
        .routes(routes!(roles::create_role, roles::list_roles))
        .routes(routes!(roles::get_role, roles::update_role, roles::delete_role))
        .routes(routes!(roles::set_user_roles))
        .routes(routes!(roles::set_client_roles))
        .routes(routes!(orgs::create_organization, orgs::list_organizations))
        .routes(routes!(orgs::get_organization, orgs::update_organization, orgs::delete_organization))
        .routes(routes!(orgs::add_member, orgs::list_members))
        .routes(routes!(orgs::update_member, orgs::remove_member))
        .routes(routes!(orgs::create_resource, orgs::list_resources))
        .routes(routes!(orgs::update_resource, orgs::delete_resource))
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .split_for_parts();
    describe_problems(&mut doc);
    (router, doc)
}

/// Every error response is an RFC 9457 problem: give each documented 4xx/5xx its media type,
/// and document the errors every operation can return: 400, 401, 429 and 503 always; 422 for
/// operations with a body or query parameters; 413 and 415 with a body; 409 `app_not_active`
/// for everything under an app that must be active.
fn describe_problems(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let under_app = path.starts_with("/admin/v1/apps/{slug}/")
            && !path.ends_with("/enable")
            && !path.ends_with("/disable")
            && !path.ends_with("/health");
        let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for op in ops.into_iter().flatten() {
            for (status, response) in op.responses.responses.iter_mut() {
                if let (true, RefOr::T(r)) = (status.starts_with('4') || status.starts_with('5'), response)
                    && let Some(content) = r.content.shift_remove("application/json")
                {
                    r.content.insert("application/problem+json".into(), content);
                }
            }
            let has_body = op.request_body.is_some();
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
            let always = [
                ("400", "Malformed request: an unknown or repeated query parameter, or a malformed value"),
                ("401", "Missing or wrong admin token"),
                ("429", "Too many wrong admin tokens from this address (see Retry-After)"),
                ("503", "A store this request needs cannot be reached"),
            ];
            let with_body = [("413", "Body larger than 64 KiB"), ("415", "Body is not JSON")];
            let validated = [("422", "A value is out of range or the values do not fit together")];
            let active = [("409", "The app is not active (`app_not_active`)")];
            let extra = always
                .iter()
                .chain(with_body.iter().filter(|_| has_body))
                .chain(validated.iter().filter(|_| has_body || has_query))
                .chain(active.iter().filter(|_| under_app));
            for (status, description) in extra {
                op.responses.responses.entry((*status).to_string()).or_insert_with(|| problem(description));
            }
        }
    }
}

/// The OpenAPI document as served at `/admin/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    split().1
}

pub fn router(state: AppState) -> Router<AppState> {
    let (api, doc) = split();
    let doc_json = doc.to_pretty_json().unwrap_or_default();
    let api = api
        .layer(middleware::map_response(problem_for_405))
        .layer(middleware::from_fn_with_state(state, auth::require_admin))
        .layer(DefaultBodyLimit::max(64 * 1024));
    Router::new()
        .route(
            "/admin/v1/openapi.json",
            get(move || {
                let doc = doc_json.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .merge(api)
}

/// axum answers a wrong method with an empty 405; the admin API answers with a problem.
async fn problem_for_405(res: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    if res.status() == axum::http::StatusCode::METHOD_NOT_ALLOWED {
        let allow = res.headers().get(axum::http::header::ALLOW).cloned();
        let mut out = ApiError::method_not_allowed().into_response();
        if let Some(a) = allow {
            out.headers_mut().insert(axum::http::header::ALLOW, a);
        }
        return out;
    }
    res
}
