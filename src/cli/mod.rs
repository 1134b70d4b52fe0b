//! The commands a person types that are not the server itself: `app status`, `app reload`,
//! `app completions` and `app man`. Each is a short-lived process that reads the system (systemd,
//! /proc, an instance's `/metrics`) and prints; none of them serves.

pub mod color;
pub mod manual;
pub mod reload;
pub mod status;
