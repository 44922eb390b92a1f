//! The store's conformance suite: the contract the dispatcher, the expiry
//! scheduler and the API rely on, run as one set of tests against
//! `ramphook::store::Store` on SQLite and on PostgreSQL (`NAME::sqlite`,
//! `NAME::postgres`), each test on a database of its own.

#[path = "../shared/pg.rs"]
mod pg;

#[macro_use]
mod harness;

mod attempts;
mod claim_plan;
mod claims;
mod connections;
mod expiry;
mod fifo;
mod handoff;
mod idempotency;
mod instances;
mod lane_checks;
mod order_updates;
mod outbox;
mod paging;
mod planner_statistics;
mod retention;
mod upgrades;
mod validation_configs;
mod writer;
