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
pub mod grants;
pub mod invitations;
pub mod jobs;
pub mod keys;
pub mod login;
pub mod mail;
pub mod mfa;
pub mod oidc;
pub mod ops;
pub mod router;
pub mod sessions;
pub mod signin;
pub mod state;
pub mod store;
pub mod tenant;
pub mod users;
pub mod web;
