//! Reading requests the way the original's clients expect: Basic credentials, query values
//! with "first value wins" and Go's boolean spellings, percent-decoded path segments with
//! the original's redirect and name rules.

use super::error::{ApiError, ApiResult};
use crate::auth::Identity;
use crate::engine::Node;
use crate::model::names::is_valid_name;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine as _;
use std::net::SocketAddr;

/// Longest Authorization header considered; longer ones fail authentication.
const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;

/// The caller of a request, from its Basic credentials; no credentials means `Failed`.
/// A refused app key is logged with the client's address, never with the secret.
pub fn identify(node: &Node, parts: &Parts) -> Identity {
    let Some((key, secret)) = basic_credentials(&parts.headers) else {
        return Identity::failed();
    };
    let identity = node.authenticate(&key, &secret);
    if identity.kind == crate::auth::IdentityKind::Failed {
        // Debug formatting escapes control characters a caller could use to forge log lines.
        tracing::info!(app_key = ?key, source = %source_address(parts), "authentication failed");
    }
    identity
}

/// The client's address for logs: `ip:port` on TCP listeners, `unix` on a Unix socket.
fn source_address(parts: &Parts) -> String {
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(address)) => address.to_string(),
        None => "unix".to_string(),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if value.len() > MAX_AUTHORIZATION_LEN {
        return None;
    }
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (key, secret) = text.split_once(':')?;
    Some((key.to_string(), secret.to_string()))
}

/// Query parameters with the original's "first value wins" rule.
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name`, if given and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A boolean parameter: absent or empty is `None`; an unknown spelling is a 400.
    pub fn bool(&self, name: &str) -> ApiResult<Option<bool>> {
        self.get(name)
            .map(|v| parse_bool(v).ok_or_else(|| ApiError::BadRequest(String::new())))
            .transpose()
    }

    /// A boolean parameter defaulting to false.
    pub fn flag(&self, name: &str) -> ApiResult<bool> {
        Ok(self.bool(name)?.unwrap_or(false))
    }

    /// A name-valued parameter, checked with the valid-name rule.
    pub fn name(&self, name: &str, what: &str) -> ApiResult<Option<String>> {
        match self.get(name) {
            Some(value) if !is_valid_name(value) => Err(invalid_name(what, value)),
            other => Ok(other.map(str::to_string)),
        }
    }
}

/// Go's `strconv.ParseBool` spellings.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// 400 naming the offending value, HTML-escaped as the original does.
pub fn invalid_name(what: &str, value: &str) -> ApiError {
    ApiError::BadRequest(format!("{what} ({}) contains invalid characters", html_escape(value)))
}

fn html_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out
}

/// Splits the part of a path after a route prefix into percent-decoded segments.
/// `Err(Redirect)` for paths the original's router cleans first (a bare prefix, or literal
/// empty, `.` or `..` segments): the location is the raw path cleaned, never built from
/// decoded input. `Err(BadRequest)` for a segment that decodes to something no name can be:
/// invalid UTF-8, a `/`, or a `.`/`..` segment, which would otherwise name another resource.
pub fn segments(full_path: &str, prefix: &str, query: Option<&str>) -> ApiResult<Vec<String>> {
    let rest = full_path.strip_prefix(prefix).unwrap_or("");
    let with_query = |path: String| match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let Some(rest) = rest.strip_prefix('/') else {
        return Err(ApiError::Redirect(with_query(format!("{prefix}/"))));
    };
    let mut parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    // Decoded first: a path with an escaping segment is refused even when it also has a
    // literal one to clean, rather than redirected to a path that is refused in turn.
    let mut decoded = Vec::with_capacity(parts.len());
    let mut needs_cleaning = false;
    for (i, part) in parts.iter().enumerate() {
        if *part == "." || *part == ".." || (part.is_empty() && i + 1 < parts.len()) {
            needs_cleaning = true;
        } else {
            decoded.push(decode_segment(part)?);
        }
    }
    if needs_cleaning {
        return Err(ApiError::Redirect(with_query(clean_path(full_path))));
    }
    if parts == [""] {
        return Ok(Vec::new());
    }
    Ok(decoded)
}

/// Percent-decodes one raw path segment, refusing what would escape it.
fn decode_segment(raw: &str) -> ApiResult<String> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::BadRequest("the path is not valid UTF-8".into()))?;
    if decoded.contains('/') || decoded == "." || decoded == ".." {
        return Err(ApiError::BadRequest(format!(
            "the path segment ({}) decodes to a '/', '.' or '..', which no name may contain",
            html_escape(raw)
        )));
    }
    Ok(decoded.into_owned())
}

/// Resolves `.`, `..` and empty segments of a raw (still percent-encoded) path like Go's
/// `path.Clean`, keeping a trailing slash.
fn clean_path(path: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            other => stack.push(other),
        }
    }
    let mut cleaned = format!("/{}", stack.join("/"));
    if path.ends_with('/') && cleaned != "/" {
        cleaned.push('/');
    }
    cleaned
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn basic_credentials_need_scheme_base64_and_colon() {
        let good = base64::engine::general_purpose::STANDARD.encode("org/admin:secret");
        assert_eq!(
            basic_credentials(&headers(&format!("Basic {good}"))),
            Some(("org/admin".into(), "secret".into()))
        );
        let no_colon = base64::engine::general_purpose::STANDARD.encode("org/admin");
        for bad in [
            "Bearer abc".to_string(),
            "Basic !!!".into(),
            format!("Basic {no_colon}"),
            "Basic".into(),
        ] {
            assert_eq!(basic_credentials(&headers(&bad)), None, "{bad}");
        }
    }

    #[test]
    fn path_segments_are_decoded_and_cleaned() {
        let p = "/api/v1/objects";
        assert_eq!(
            segments("/api/v1/objects/org/t/i", p, None).unwrap(),
            vec!["org", "t", "i"]
        );
        assert_eq!(
            segments("/api/v1/objects/org/t/i/", p, None).unwrap(),
            vec!["org", "t", "i"]
        );
        assert_eq!(
            segments("/api/v1/objects/a%20b/%C3%A9", p, None).unwrap(),
            vec!["a b", "é"]
        );
        assert_eq!(segments("/api/v1/objects/", p, None).unwrap(), Vec::<String>::new());
        assert!(
            matches!(segments("/api/v1/objects", p, Some("x=1")), Err(ApiError::Redirect(l)) if l == "/api/v1/objects/?x=1")
        );
        assert!(
            matches!(segments("/api/v1/objects/o//t", p, None), Err(ApiError::Redirect(l)) if l == "/api/v1/objects/o/t")
        );
        assert!(
            matches!(segments("/api/v1/objects/o/../a%20b/t", p, None), Err(ApiError::Redirect(l)) if l == "/api/v1/objects/a%20b/t")
        );
        for escaping in ["a%2Fb", "t/..%2F..%2Fetc%2Fpasswd", "o/%2E%2E/t", "o/%2e", "o/../%2e/t"] {
            let path = format!("/api/v1/objects/{escaping}");
            assert!(
                matches!(segments(&path, p, None), Err(ApiError::BadRequest(ref m)) if m.contains("decodes to")),
                "{path}"
            );
        }
        assert!(matches!(
            segments("/api/v1/objects/%FF", p, None),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn booleans_follow_go_spellings() {
        let q = Query::parse(Some("a=True&b=0&c=yes&a=false"));
        assert_eq!(q.bool("a").unwrap(), Some(true), "first value wins");
        assert_eq!(q.bool("b").unwrap(), Some(false));
        assert!(q.bool("c").is_err());
        assert_eq!(q.bool("missing").unwrap(), None);
    }
}
