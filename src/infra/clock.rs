//! Wall-clock time as the records carry it: milliseconds since the Unix epoch (a todo's
//! `created_at`/`updated_at`, a chat frame's `ts`). Here, not in one of them, so neither domain
//! reaches into the other for the time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch now; 0 for a clock set before it.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
