//! Black-box tests of `ramphook serve`: real server, real receivers.

mod common;

mod auth;
mod cli;
mod crash;
mod delivery;
mod endpoints;
mod errors;
mod operations;
mod orders;
mod validation;
mod wire_format;
