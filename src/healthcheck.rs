//! `edge-sync-service --healthcheck`: asks the node that the same configuration describes for
//! `GET /api/v1/health` and reports whether it is healthy. Container images without a shell
//! or curl (distroless, scratch) run this as their `HEALTHCHECK`.

use crate::config::{Config, ListeningType};
use std::time::Duration;

/// Longest the probe waits for the node's whole answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Probes the listener `config` names: plain HTTP when the node serves it, else HTTPS, or
/// its Unix socket. `Ok` carries a one-line summary of a healthy node, `Err` the reason it
/// is not.
///
/// The probe sends no credentials, so it never has a secret to leak and never adds an
/// "authentication failed" line to the node's log. The route then answers 403 — which
/// still proves the node accepts connections and serves requests — except under an
/// authenticator that lets anonymous callers see the report; a report must say `green`.
pub async fn probe(config: &Config) -> Result<String, String> {
    let listening = config.listening_type;
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        // The peer is this machine's own node (loopback or socket file) and nothing secret
        // is sent; its certificate is often self-signed (an ESS generates one) and names no
        // loopback address, so verifying it would only make the probe fail.
        .danger_accept_invalid_certs(true);
    let url = if listening.is_unix() {
        builder = builder.unix_socket(config.resolve_path(&config.listening_address));
        let scheme = if listening == ListeningType::SecureUnix {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://localhost/api/v1/health")
    } else if listening.serves_tcp_plain() {
        let host = local_host(&config.listening_address);
        format!("http://{host}:{}/api/v1/health", config.unsecure_listening_port)
    } else {
        let host = local_host(&config.listening_address);
        format!("https://{host}:{}/api/v1/health", config.secure_listening_port)
    };
    let client = builder
        .build()
        .map_err(|e| format!("cannot prepare the HTTP client: {e}"))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: no answer: {}", with_causes(&e)))?;
    let status = response.status();
    match status.as_u16() {
        200 => {
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("{url}: health report cut short: {e}"))?;
            let report: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("{url}: unreadable health report: {e}"))?;
            match report["general"]["healthStatus"].as_str() {
                Some("green") => Ok(format!("{url}: healthy")),
                other => Err(format!("{url}: health status {}", other.unwrap_or("missing"))),
            }
        }
        401 | 403 => Ok(format!("{url}: serving ({status} without credentials)")),
        _ => Err(format!("{url}: answered {status}")),
    }
}

/// `error: cause: cause…`: reqwest's own message ("error sending request") hides the
/// reason (connection refused, timed out) in its sources.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The address to reach a TCP listener bound to `listening_address` from this machine:
/// loopback for the wildcard (or empty) address, the configured host otherwise.
fn local_host(listening_address: &str) -> String {
    match listening_address {
        "" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        host if host.contains(':') && !host.starts_with('[') => format!("[{host}]"),
        host => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::local_host;

    #[test]
    fn wildcard_addresses_are_reached_over_loopback() {
        assert_eq!(local_host(""), "127.0.0.1");
        assert_eq!(local_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(local_host("::"), "[::1]");
        assert_eq!(local_host("[::]"), "[::1]");
    }

    #[test]
    fn specific_addresses_are_used_as_configured() {
        assert_eq!(local_host("10.1.2.3"), "10.1.2.3");
        assert_eq!(local_host("fd00::1"), "[fd00::1]");
        assert_eq!(local_host("[fd00::1]"), "[fd00::1]");
        assert_eq!(local_host("edge.local"), "edge.local");
    }
}
