//! Signing in, as a service with no HTTP in it: first factors (password today; magic links
//! and invitations end here too), the steps an app's policy still asks for, and the finish that
//! creates the session and completes the client's request (SPEC §7, §8).
//!
//! - [`service`]: `check_password`, `finish`, `start_session`, `resume` → [`Outcome`].
//! - [`steps`]: what is still due (second factor, confirmation, expired password, profile).
//! - [`pending`]: sign-ins parked on a step, stored hashed.
//! - [`federated`]: an upstream provider as the first factor; linking and unlinking.
//! - [`password`]: Argon2id hashing off the async workers, imported hashes verified as they are.
//! - [`throttle`]: brute-force limits per account and client address.

pub mod federated;
pub mod password;
pub mod pending;
pub mod service;
pub mod steps;
pub mod throttle;

#[cfg(test)]
mod tests;

pub use pending::purge_expired;
pub use service::{Context, Outcome, PasswordCheck, Resumed, SignInError};
pub use steps::Step;
