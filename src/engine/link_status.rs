//! How an ESS's link to its CSS stands, for people and monitoring: the state (connected,
//! retrying, offline), since when, the last successful exchange, and the last error with a
//! reason from a fixed list. The transports report each exchange's outcome; `/api/v1/health`,
//! `/metrics` and the log (at each change) read it here.

use crate::clock::{now_secs, Instant};
use parking_lot::Mutex;
use std::time::Duration;

/// Why an exchange with the CSS failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkReason {
    /// The CSS's (or broker's) host name does not resolve.
    Dns,
    /// Nothing listens at the address (connection refused or unreachable).
    Refused,
    /// The TLS handshake failed: an untrusted or wrong certificate, or no common protocol.
    Tls,
    /// The CSS or the broker refused this node's credentials.
    Unauthorized,
    /// No answer in time.
    Timeout,
    /// The MQTT broker failed in another way (refused the session, closed the connection).
    Broker,
    /// The CSS answered with a server error (5xx).
    ServerError,
}

impl LinkReason {
    /// Every reason, in the order metrics list them.
    pub const ALL: [Self; 7] = [
        Self::Dns,
        Self::Refused,
        Self::Tls,
        Self::Unauthorized,
        Self::Timeout,
        Self::Broker,
        Self::ServerError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Refused => "refused",
            Self::Tls => "tls",
            Self::Unauthorized => "unauthorized",
            Self::Timeout => "timeout",
            Self::Broker => "broker",
            Self::ServerError => "server-error",
        }
    }
}

/// The link's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkCondition {
    /// The last exchange succeeded.
    Connected,
    /// Exchanges fail, for less than the link's patience: it is being retried.
    Retrying,
    /// Exchanges have failed for longer than that, or none succeeded yet.
    Offline,
}

impl LinkCondition {
    pub const ALL: [Self; 3] = [Self::Connected, Self::Retrying, Self::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Retrying => "retrying",
            Self::Offline => "offline",
        }
    }
}

/// The last failed exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    pub reason: LinkReason,
    pub message: String,
    /// Seconds since the epoch.
    pub at: i64,
}

/// What the link looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    pub condition: LinkCondition,
    /// Seconds since the epoch when the link entered `condition`.
    pub since: i64,
    /// Seconds since the epoch of the last successful exchange.
    pub last_success: Option<i64>,
    pub last_error: Option<LinkError>,
    /// Failed exchanges since the start, per reason (in [`LinkReason::ALL`] order).
    pub failures: [u64; LinkReason::ALL.len()],
}

struct Record {
    report: LinkReport,
    /// When the current run of failures began (monotonic), while it lasts.
    failing_since: Option<Instant>,
}

/// The link's record, updated by the transport, read by health, metrics and the log.
pub struct LinkMonitor {
    record: Mutex<Record>,
    /// How long failures may last before the link counts as offline.
    patience: Duration,
}

impl LinkMonitor {
    /// A link not connected yet, offline after failing for `patience`.
    pub fn new(patience: Duration) -> Self {
        Self {
            record: Mutex::new(Record {
                report: LinkReport {
                    condition: LinkCondition::Offline,
                    since: now_secs(),
                    last_success: None,
                    last_error: None,
                    failures: [0; LinkReason::ALL.len()],
                },
                failing_since: None,
            }),
            patience,
        }
    }

    /// An exchange with the CSS succeeded.
    pub fn succeeded(&self) {
        let now = now_secs();
        let mut record = self.record.lock();
        record.failing_since = None;
        record.report.last_success = Some(now);
        if record.report.condition != LinkCondition::Connected {
            tracing::info!(
                previous = record.report.condition.as_str(),
                "link to the CSS: connected"
            );
            record.report.condition = LinkCondition::Connected;
            record.report.since = now;
        }
    }

    /// An exchange with the CSS failed for `reason`.
    pub fn failed(&self, reason: LinkReason, message: &str) {
        let now = now_secs();
        let mut record = self.record.lock();
        let previous_reason = record.report.last_error.as_ref().map(|e| e.reason);
        record.report.failures[reason_slot(reason)] += 1;
        record.report.last_error = Some(LinkError {
            reason,
            message: message.to_string(),
            at: now,
        });
        let failing_since = *record.failing_since.get_or_insert_with(Instant::now);
        let next = match record.report.condition {
            LinkCondition::Connected => LinkCondition::Retrying,
            LinkCondition::Retrying if failing_since.elapsed() >= self.patience => LinkCondition::Offline,
            unchanged => unchanged,
        };
        if next != record.report.condition {
            tracing::warn!(
                state = next.as_str(),
                reason = reason.as_str(),
                error = message,
                "link to the CSS: {}",
                next.as_str()
            );
            record.report.condition = next;
            record.report.since = now;
        } else if previous_reason != Some(reason) && next != LinkCondition::Connected {
            tracing::warn!(
                state = next.as_str(),
                reason = reason.as_str(),
                error = message,
                "link to the CSS: another failure"
            );
        }
    }

    /// The link now.
    pub fn report(&self) -> LinkReport {
        self.record.lock().report.clone()
    }
}

fn reason_slot(reason: LinkReason) -> usize {
    LinkReason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_retry_then_go_offline_after_the_patience_and_a_success_reconnects() {
        let link = LinkMonitor::new(Duration::from_secs(30));
        assert_eq!(link.report().condition, LinkCondition::Offline);
        assert_eq!(link.report().last_success, None);
        link.succeeded();
        assert_eq!(link.report().condition, LinkCondition::Connected);
        assert!(link.report().last_success.is_some());

        link.failed(LinkReason::Refused, "connection refused");
        let report = link.report();
        assert_eq!(report.condition, LinkCondition::Retrying);
        assert_eq!(report.last_error.as_ref().map(|e| e.reason), Some(LinkReason::Refused));
        tokio::time::advance(Duration::from_secs(29)).await;
        link.failed(LinkReason::Timeout, "timed out");
        assert_eq!(link.report().condition, LinkCondition::Retrying);
        tokio::time::advance(Duration::from_secs(1)).await;
        link.failed(LinkReason::Timeout, "timed out");
        let report = link.report();
        assert_eq!(report.condition, LinkCondition::Offline);
        assert_eq!(report.failures[reason_slot(LinkReason::Timeout)], 2);
        assert_eq!(report.failures[reason_slot(LinkReason::Refused)], 1);

        link.succeeded();
        let report = link.report();
        assert_eq!(report.condition, LinkCondition::Connected);
        // The last error stays visible after the link recovered.
        assert_eq!(report.last_error.map(|e| e.reason), Some(LinkReason::Timeout));
        // A new run of failures starts its own patience.
        link.failed(LinkReason::Dns, "no such host");
        assert_eq!(link.report().condition, LinkCondition::Retrying);
    }
}
