//! Black-box tests of `ramphook serve` and the partner tools: real server,
//! real receivers, real child processes.

#[path = "../shared/pg.rs"]
mod pg;

#[macro_use]
mod common;

mod auth;
mod cli;
mod crash;
mod delivery;
mod endpoint_health;
mod endpoints;
mod errors;
mod limits;
mod operations;
mod orders;
mod partner_docs;
mod partner_listen;
mod partner_verify;
mod postgres;
mod readme_walkthrough;
mod secrecy;
mod ssrf;
mod validation;
mod wire_format;
