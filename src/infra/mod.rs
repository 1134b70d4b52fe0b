//! What every layer above uses and none owns: the metrics counters (shared between a cluster's
//! processes), the link to Redis, the cluster chat bus's framing, a connection's slot, and what
//! /proc says about a process.

pub(crate) mod bus_wire;
pub(crate) mod clock;
pub(crate) mod metrics;
pub mod procfs;
pub(crate) mod redis;
pub(crate) mod slot;
