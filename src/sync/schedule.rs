//! When the ESS's tasks poll, and their timing from the configuration (pure).

use super::retry::RetryPolicy;
use crate::config::Config;
use std::time::Duration;

/// Timing of the sync tasks, from the configuration.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// `HTTPPollingInterval`, seconds: the long-poll hold asked for and the longest delay
    /// between polls against a CSS without long polling.
    pub polling_interval: u16,
    /// `ResendInterval`.
    pub resend_interval: Duration,
    /// `ESSPingInterval` (hours in the configuration); `None` disables pings.
    pub ping_interval: Option<Duration>,
    /// `EnableDataChunk`.
    pub chunking: bool,
    pub retry: RetryPolicy,
    /// `ESSConsumedObjectsKept`: own objects kept as `consumedByDest` metadata.
    pub consumed_objects_kept: usize,
}

impl LoopSettings {
    /// From the configuration.
    pub fn from_config(config: &Config) -> Self {
        let hours = u64::try_from(config.ess_ping_interval).unwrap_or(0);
        let polling_interval = config.http_polling_interval.max(1);
        let resend_interval = Duration::from_secs(u64::try_from(config.resend_interval).unwrap_or(0).max(1));
        let cadence = if config.communication_protocol.uses_mqtt() {
            resend_interval
        } else {
            Duration::from_secs(u64::from(polling_interval))
        };
        Self {
            polling_interval,
            resend_interval,
            ping_interval: (hours > 0).then(|| Duration::from_secs(hours * 3600)),
            chunking: config.enable_data_chunk,
            retry: RetryPolicy::from_config(config, cadence),
            consumed_objects_kept: usize::try_from(config.ess_consumed_objects_kept).unwrap_or(0),
        }
    }
}

/// What one poll round amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollResult {
    /// At least one element was handled and acknowledged.
    Progress,
    /// No element; `held` when the CSS held the request (a long poll that ran its course).
    Empty { held: bool },
    /// Elements came, but none could be handled (left pending on the CSS).
    NoProgress,
    /// The poll failed.
    Failed,
}

/// When to poll next (pure). Against a CSS that holds polls, poll again at once after
/// anything useful; otherwise the original's schedule of §3.7: after a round that brought
/// something the next comes `N/10` later, and every empty round adds `N/10` up to `N`.
/// Rounds that bring nothing new never re-poll at once (the tight-loop flaw of §3.7).
#[derive(Debug, Clone)]
pub struct PollSchedule {
    step: Duration,
    max: Duration,
    delay: Duration,
    got_something: bool,
}

impl PollSchedule {
    /// For `HTTPPollingInterval` = `interval_secs`.
    pub fn new(interval_secs: u16) -> Self {
        let max = Duration::from_secs(u64::from(interval_secs.max(1)));
        let step = (max / 10).max(Duration::from_millis(100));
        Self {
            step,
            max,
            delay: step,
            got_something: true,
        }
    }

    /// The delay before the next poll after a round with `result`.
    pub fn next(&mut self, result: PollResult, long_poll: bool) -> Duration {
        match result {
            PollResult::Progress => {
                self.got_something = true;
                Duration::ZERO
            }
            PollResult::Empty { held: true } if long_poll => {
                self.got_something = true;
                self.delay = self.step;
                Duration::ZERO
            }
            PollResult::Empty { .. } if self.got_something => {
                self.got_something = false;
                self.delay = self.step;
                self.delay
            }
            PollResult::Empty { .. } | PollResult::NoProgress | PollResult::Failed => {
                self.got_something = false;
                self.delay = (self.delay + self.step).min(self.max);
                self.delay
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_long_polling_the_interval_schedule_applies() {
        let mut schedule = PollSchedule::new(10);
        let second = Duration::from_secs(1);
        // A round that brought work re-polls at once; the next empty round waits N/10.
        assert_eq!(schedule.next(PollResult::Progress, false), Duration::ZERO);
        assert_eq!(schedule.next(PollResult::Empty { held: false }, false), second);
        // Empty rounds add N/10 each, up to N.
        let delays: Vec<Duration> = (0..12)
            .map(|_| schedule.next(PollResult::Empty { held: false }, false))
            .collect();
        assert_eq!(delays[0], second * 2);
        assert_eq!(delays[8], second * 10);
        assert_eq!(delays[11], second * 10);
        // Work resets the schedule.
        assert_eq!(schedule.next(PollResult::Progress, false), Duration::ZERO);
        assert_eq!(schedule.next(PollResult::Empty { held: false }, false), second);
    }

    #[test]
    fn long_polls_repoll_at_once_but_never_spin() {
        let mut schedule = PollSchedule::new(10);
        assert_eq!(schedule.next(PollResult::Empty { held: true }, true), Duration::ZERO);
        assert_eq!(schedule.next(PollResult::Progress, true), Duration::ZERO);
        // An answer that came back at once although nothing was pending: back off.
        assert!(schedule.next(PollResult::Empty { held: false }, true) > Duration::ZERO);
        // Elements that cannot be handled (left pending) do not cause a tight loop.
        let first = schedule.next(PollResult::NoProgress, true);
        let second = schedule.next(PollResult::NoProgress, true);
        assert!(first > Duration::ZERO && second > first);
        assert!(schedule.next(PollResult::Failed, true) > Duration::ZERO);
    }

    /// An ESS's settings from the environment `env` (no configuration file).
    fn ess_settings(env: &[(&str, &str)]) -> LoopSettings {
        let base = [
            ("NODE_TYPE", "ESS"),
            ("ORG_ID", "org"),
            ("DESTINATION_TYPE", "edge"),
            ("DESTINATION_ID", "node1"),
            ("HTTP_CSS_HOST", "127.0.0.1"),
            ("HTTP_CSS_PORT", "8080"),
        ];
        let lookup = |name: &str| {
            base.iter()
                .chain(env)
                .rev()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        };
        let config = Config::load(
            std::path::Path::new("/nonexistent/edge-sync-service/sync.conf"),
            &lookup,
        )
        .expect("configuration");
        LoopSettings::from_config(&config)
    }

    #[test]
    fn retries_back_off_no_further_than_the_nodes_cadence() {
        let delays =
            |settings: LoopSettings| -> Vec<u64> { (1..=6).map(|k| settings.retry.delay(k).as_secs()).collect() };
        let http = ess_settings(&[("COMMUNICATION_PROTOCOL", "http"), ("HTTP_POLLING_INTERVAL", "10")]);
        assert_eq!(delays(http), vec![2, 4, 8, 10, 10, 10], "polling interval");
        let mqtt = ess_settings(&[("COMMUNICATION_PROTOCOL", "mqtt"), ("RESEND_INTERVAL", "5")]);
        assert_eq!(delays(mqtt), vec![2, 4, 5, 5, 5, 5], "resend interval");
        // A first delay longer than the cadence is kept, not shortened.
        let slow = ess_settings(&[
            ("COMMUNICATION_PROTOCOL", "http"),
            ("HTTP_POLLING_INTERVAL", "1"),
            ("ESS_CALL_SPI_RETRY_INTERVAL", "3"),
        ]);
        assert_eq!(delays(slow), vec![3; 6]);
    }

    #[test]
    fn short_intervals_keep_a_minimum_step() {
        let mut schedule = PollSchedule::new(1);
        assert_eq!(
            schedule.next(PollResult::Empty { held: false }, false),
            Duration::from_millis(100)
        );
        for _ in 0..20 {
            schedule.next(PollResult::Failed, false);
        }
        assert_eq!(schedule.next(PollResult::Failed, false), Duration::from_secs(1));
    }
}
