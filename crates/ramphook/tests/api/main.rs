//! Black-box tests of `ramphook serve` and the partner tools: real server,
//! real receivers, real child processes.

#[macro_use]
mod common;

mod auth;
mod cli;
mod crash;
mod delivery;
mod endpoints;
mod errors;
mod limits;
mod operations;
mod orders;
mod partner_docs;
mod partner_listen;
mod partner_verify;
mod postgres;
mod secrecy;
mod ssrf;
mod validation;
mod wire_format;
