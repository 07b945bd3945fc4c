//! Why an exchange with the other node failed, in the fixed terms of the ESS's link status
//! ([`LinkReason`]), from the errors the HTTP client and the MQTT connection report.

use crate::engine::LinkReason;
use std::error::Error;

/// The reason that `error`'s chain of sources shows, if any: a name that did not resolve, a
/// refused or unreachable address, a failed TLS handshake, or a timeout.
pub fn reason_in_chain(error: &(dyn Error + 'static)) -> Option<LinkReason> {
    let mut current: Option<&(dyn Error + 'static)> = Some(error);
    let mut text = String::new();
    while let Some(e) = current {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return Some(LinkReason::Tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable => {
                    return Some(LinkReason::Refused)
                }
                TimedOut => return Some(LinkReason::Timeout),
                _ => {}
            }
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return Some(LinkReason::Tls);
            }
        }
        text.push_str(&e.to_string().to_lowercase());
        text.push(' ');
        current = e.source();
    }
    // What the resolver and TLS layers say has no type of its own to test.
    if [
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no address associated",
    ]
    .iter()
    .any(|t| text.contains(t))
    {
        return Some(LinkReason::Dns);
    }
    if ["certificate", "tls handshake", "invalid peer"]
        .iter()
        .any(|t| text.contains(t))
    {
        return Some(LinkReason::Tls);
    }
    if text.contains("timed out") || text.contains("timeout") {
        return Some(LinkReason::Timeout);
    }
    None
}

/// The reason an HTTP request to the CSS got no answer.
pub fn reason_of_request(error: &reqwest::Error) -> LinkReason {
    if error.is_timeout() {
        return LinkReason::Timeout;
    }
    reason_in_chain(error).unwrap_or(if error.is_connect() {
        LinkReason::Refused
    } else {
        // The connection was taken and then closed or broken by the other side.
        LinkReason::ServerError
    })
}

/// The reason of an answer's status, when it is a failure of the link rather than of the
/// request: credentials refused, or a server error.
pub fn reason_of_status(status: u16) -> Option<LinkReason> {
    match status {
        401 | 403 => Some(LinkReason::Unauthorized),
        500..=599 if status != 507 => Some(LinkReason::ServerError),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_and_their_texts_give_their_reasons() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(reason_in_chain(&refused), Some(LinkReason::Refused));
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(reason_in_chain(&timed_out), Some(LinkReason::Timeout));
        let dns = std::io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(reason_in_chain(&dns), Some(LinkReason::Dns));
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(reason_in_chain(&tls), Some(LinkReason::Tls));
        assert_eq!(reason_in_chain(&std::io::Error::other("something else")), None);
    }

    #[test]
    fn statuses_of_the_link_not_of_the_request() {
        assert_eq!(reason_of_status(401), Some(LinkReason::Unauthorized));
        assert_eq!(reason_of_status(403), Some(LinkReason::Unauthorized));
        assert_eq!(reason_of_status(503), Some(LinkReason::ServerError));
        // A full disk at the CSS is the request's trouble, retried; so are 404 and 409.
        for status in [200, 204, 404, 409, 429, 507] {
            assert_eq!(reason_of_status(status), None, "{status}");
        }
    }
}
