//! Signing keys per app (SPEC §6): generation, sealing at rest, rotation with a grace window,
//! and the signer/verifier halves used by `oidc`.

pub mod material;
pub mod model;
mod repo;
pub mod service;

pub use material::{Signer, published_jwk};
pub use model::{KeyId, KeyState, SigningAlg, SigningKey};
pub use repo::retire_expired;
pub use service::KeyError;
