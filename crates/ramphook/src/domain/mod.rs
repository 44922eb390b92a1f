//! The pure heart of ramphook: order states, event names, ids and times.
//! Nothing here does I/O, so all of it is unit-tested directly.

pub mod ids;
pub mod order;
pub mod time;
