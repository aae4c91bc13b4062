//! One integration-test binary: a file per domain; store-touching scenarios run on both SQLite
//! and PostgreSQL (see `kit::both!`).

mod browser_kit;
mod kit;
mod mail_kit;
mod upstream_kit;

mod apps;
mod architecture;
mod audit;
mod bad_input;
mod browser;
mod browser_orgs;
mod browser_upstream;
mod cli;
mod cli_access;
mod clients;
mod cors;
mod failures;
mod federation;
mod first_run;
mod hardening;
mod keys;
mod mail;
mod mfa;
mod openapi;
mod orgs;
mod passwords;
mod policy;
mod providers;
mod provisioning;
mod replicas;
mod roles;
mod signin;
mod throttle;
mod tokens;
mod upstream;
mod users;
