//! Getting committed events to partners: the dispatcher that claims due
//! deliveries, the outbound HTTP sender, and the retry schedule.

pub mod alerts;
pub mod dispatcher;
pub mod lanes;
pub mod retry;
pub mod sender;
