//! The commands a person types that are not the server itself: `app status`, `app reload`,
//! `app completions` and `app man`. Each is a short-lived process that reads the system (systemd,
//! /proc, an instance's `/metrics`) and prints; none of them serves.

pub(crate) mod color;
pub(crate) mod manual;
pub(crate) mod reload;
pub mod status;
