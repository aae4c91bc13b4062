//! The per-app context every surface resolves first: the app's issuer (configuration, clients,
//! signer and verifiers, identity store), its pre-serialised discovery and JWKS documents, and
//! its CORS origins. Used by `oidc`, `login`, `mail` and `admin`; uses none of them.

mod cache;
pub mod discovery;
pub mod origins;

pub use cache::{Issuer, IssuerCache, LoadError, Lookup};
