//! The per-connection limits of a chat socket and the rate limiter.

use std::time::{Duration, Instant};

use crate::config::Config;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_message_bytes: usize,
    pub(crate) rate: u32,
    pub(crate) burst: u32,
    pub(crate) ping_interval: Duration,
    /// Rooms one Socket.IO socket may be in at once.
    pub(crate) rooms_per_socket: usize,
}

impl From<&Config> for Limits {
    fn from(config: &Config) -> Limits {
        Limits {
            max_message_bytes: config.chat_max_message_bytes as usize,
            rate: config.chat_rate,
            burst: config.chat_burst,
            ping_interval: config.chat_ping_interval,
            rooms_per_socket: config.chat_rooms_per_socket as usize,
        }
    }
}

/// A token bucket: `burst` messages at once, then `rate` a second.
pub(crate) struct RateLimiter {
    tokens: f64,
    rate: f64,
    burst: f64,
    refilled: Instant,
}

impl RateLimiter {
    pub(crate) fn new(limits: &Limits) -> RateLimiter {
        let burst = f64::from(limits.burst);
        RateLimiter { tokens: burst, rate: f64::from(limits.rate), burst, refilled: Instant::now() }
    }

    /// Whether one more message may go now.
    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals() {
        let limits = Limits {
            max_message_bytes: 10,
            rate: 1,
            burst: 3,
            ping_interval: Duration::from_secs(1),
            rooms_per_socket: 1,
        };
        let mut limiter = RateLimiter::new(&limits);
        assert!((0..3).all(|_| limiter.allow()));
        assert!(!limiter.allow());
    }
}
