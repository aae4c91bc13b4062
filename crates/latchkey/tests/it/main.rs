//! One integration-test binary: a file per domain, each scenario run on SQLite and PostgreSQL.

mod kit;

mod admin_api;
mod apps;
mod clients;
mod keys;
mod tokens;
