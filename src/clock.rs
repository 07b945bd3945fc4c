//! The one clock, read in one place. Wall time (Unix-epoch seconds, milliseconds or
//! nanoseconds) is what is stored with objects and notifications and shown in health;
//! [`Instant`] measures durations and deadlines, and timers sleep on the same clock.
//!
//! Monotonic time is tokio's, so a test can pause it and move it on
//! (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`). In the crate's own tests
//! wall time follows that clock too: expiration and activation times, resend times and node
//! ages move with the timers, and a test of an hour-long period runs in milliseconds. The
//! service itself reads the system's wall clock, so a corrected host clock is followed.

use std::time::Duration;

/// A point on the monotonic clock (tokio's, which tests can pause).
pub use tokio::time::Instant;

#[cfg(not(test))]
fn since_epoch() -> Duration {
    system_since_epoch()
}

/// Wall time as the system's wall time at the first reading plus the monotonic time since
/// then, so that pausing or advancing tokio's clock moves it too.
#[cfg(test)]
fn since_epoch() -> Duration {
    static ANCHOR: std::sync::OnceLock<(Duration, std::time::Instant)> = std::sync::OnceLock::new();
    let &(wall, at) = ANCHOR.get_or_init(|| (system_since_epoch(), std::time::Instant::now()));
    let now = Instant::now().into_std();
    match now.checked_duration_since(at) {
        Some(ahead) => wall + ahead,
        // A runtime paused before the first reading starts from its own earlier instant.
        None => wall.saturating_sub(at - now),
    }
}

fn system_since_epoch() -> Duration {
    // A clock set before 1970 reads as the epoch rather than failing the operation.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    i64::try_from(since_epoch().as_secs()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    i64::try_from(since_epoch().as_millis()).unwrap_or(i64::MAX)
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    i64::try_from(since_epoch().as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_moves_with_paused_time_in_tests() {
        let before = now_millis();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let after = now_millis();
        // Paused: nothing but the advance moves the clock (a millisecond of slack for the
        // rounding of the two readings).
        assert!((after - before - 3_600_000).abs() <= 1, "moved {} ms", after - before);
    }

    #[test]
    fn wall_time_outside_a_runtime_is_the_systems() {
        let system = i64::try_from(system_since_epoch().as_secs()).unwrap();
        assert!((now_secs() - system).abs() <= 1);
    }
}
