//! Latchkey: a multi-tenant OpenID Connect provider. See `docs/architecture.md`.

pub mod admin;
pub mod app;
pub mod apps;
pub mod audit;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod invitations;
pub mod janitor;
pub mod keys;
pub mod login;
pub mod mail;
pub mod mfa;
pub mod oidc;
pub mod ops;
pub mod router;
pub mod state;
pub mod sessions;
pub mod store;
pub mod users;
