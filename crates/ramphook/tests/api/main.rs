//! Black-box tests of `ramphook serve`: real server, real receivers.

#[macro_use]
mod common;

mod auth;
mod cli;
mod crash;
mod delivery;
mod endpoints;
mod errors;
mod operations;
mod orders;
mod postgres;
mod wire_format;
