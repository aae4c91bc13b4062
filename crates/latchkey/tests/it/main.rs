//! One integration-test binary: a file per domain; store-touching scenarios run on both SQLite
//! and PostgreSQL (see `kit::both!`).

mod browser_kit;
mod kit;

mod apps;
mod audit;
mod bad_input;
mod browser;
mod cli;
mod clients;
mod first_run;
mod keys;
mod openapi;
mod replicas;
mod signin;
mod tokens;
