//! The additions to the original's answers that say how links stand: the ESS's link to its
//! CSS in `/api/v1/health` (`cssLink`), and each node's last contact and link state in the
//! CSS's destinations listing. New fields only: the original's clients ignore them.

use crate::engine::{LinkReason, LinkReport, NodeView};
use crate::model::lifecycle::rfc3339_utc;
use crate::model::Destination;
use serde::Serialize;
use std::collections::BTreeMap;

/// `cssLink` of an ESS's health report.
#[derive(Serialize)]
pub struct CssLinkHealth {
    /// `connected`, `retrying` or `offline`.
    state: &'static str,
    /// When the link entered that state (RFC 3339, UTC).
    since: String,
    #[serde(rename = "lastSuccess", skip_serializing_if = "Option::is_none")]
    last_success: Option<String>,
    #[serde(rename = "lastError", skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// One of `dns`, `refused`, `tls`, `unauthorized`, `timeout`, `broker`, `server-error`.
    #[serde(rename = "lastErrorReason", skip_serializing_if = "Option::is_none")]
    last_error_reason: Option<&'static str>,
    #[serde(rename = "lastErrorTime", skip_serializing_if = "Option::is_none")]
    last_error_time: Option<String>,
    /// Failed exchanges since the start, per reason.
    failures: BTreeMap<&'static str, u64>,
}

impl CssLinkHealth {
    pub fn of(report: &LinkReport) -> Self {
        let error = report.last_error.as_ref();
        Self {
            state: report.condition.as_str(),
            since: rfc3339_utc(report.since),
            last_success: report.last_success.map(rfc3339_utc),
            last_error: error.map(|e| e.message.clone()),
            last_error_reason: error.map(|e| e.reason.as_str()),
            last_error_time: error.map(|e| rfc3339_utc(e.at)),
            failures: LinkReason::ALL
                .iter()
                .zip(report.failures)
                .map(|(reason, count)| (reason.as_str(), count))
                .collect(),
        }
    }
}

/// An entry of the CSS's destinations listing: the original's fields, then when the node was
/// last heard from, its link state and the objects on their way to it.
#[derive(Serialize)]
pub struct DestinationEntry {
    #[serde(flatten)]
    destination: Destination,
    #[serde(rename = "lastSeen")]
    last_seen: String,
    /// `online`, `late` or `offline`.
    #[serde(rename = "linkState")]
    link_state: &'static str,
    #[serde(rename = "objectsPending")]
    objects_pending: u64,
}

impl DestinationEntry {
    pub fn of(view: NodeView) -> Self {
        Self {
            last_seen: rfc3339_utc(view.last_heard),
            link_state: view.link.as_str(),
            objects_pending: view.pending,
            destination: view.destination,
        }
    }
}
