//! Where the client sends its requests and as whom: from flags, or from the environment
//! that `hzn mms` users already have (`HZN_FSS_CSSURL`, `HZN_ORG_ID`,
//! `HZN_EXCHANGE_USER_AUTH`), and what a failed request becomes: one line saying what went
//! wrong, and an exit code.

use base64::Engine as _;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::path::PathBuf;

/// Exit codes: the request was refused or found nothing (1), the command line or the
/// settings are wrong (2), the service could not be reached (3).
pub const REFUSED: i32 = 1;
pub const USAGE: i32 = 2;
pub const UNREACHABLE: i32 = 3;

/// Why a command failed, as one line for the user.
#[derive(Debug)]
pub struct ClientError {
    pub code: i32,
    pub message: String,
}

impl ClientError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            code: REFUSED,
            message: message.into(),
        }
    }

    /// A request that could not be made or answered (connection, TLS, timeout).
    pub fn network(what: &str, error: &reqwest::Error) -> Self {
        let mut message = format!("{what}: {error}");
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Self {
            code: UNREACHABLE,
            message,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// The service and the credentials, as given on the command line (flags win over the
/// environment).
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// URL of the CSS or ESS, e.g. https://css.example.com:8443 [env: EDGE_SYNC_URL, then HZN_FSS_CSSURL]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Organization of the objects [env: HZN_ORG_ID]
    #[arg(short = 'o', long, global = true, value_name = "ORG")]
    pub org: Option<String>,
    /// Credentials, user:password (the user as org/name, or an ESS's service) [env: EDGE_SYNC_USER_AUTH, then HZN_EXCHANGE_USER_AUTH]
    #[arg(short = 'u', long = "user-pw", global = true, value_name = "USER:PW")]
    pub user: Option<String>,
    /// CA certificate (PEM file) to trust for https:// instead of the system's [env: EDGE_SYNC_CA]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// A connection to one service.
pub struct Connection {
    base: String,
    /// The objects' organization; on an ESS, where paths have none, possibly empty.
    pub org: String,
    /// The service is an ESS: its paths have no organization segment.
    pub ess: bool,
    authorization: Option<String>,
    http: reqwest::Client,
}

fn from_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.trim().is_empty()))
}

impl Connection {
    /// Connects to the service and asks its health which role it plays (an ESS's paths have
    /// no organization segment).
    pub async fn open(args: &ConnectionArgs) -> ClientResult<Self> {
        let url = args
            .url
            .clone()
            .or_else(|| from_env(&["EDGE_SYNC_URL", "HZN_FSS_CSSURL"]))
            .ok_or_else(|| ClientError::usage("no service URL: give --url or set EDGE_SYNC_URL"))?;
        let base = url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::usage(format!(
                "the service URL must start with http:// or https://, not '{base}'"
            )));
        }
        let user = args
            .user
            .clone()
            .or_else(|| from_env(&["EDGE_SYNC_USER_AUTH", "HZN_EXCHANGE_USER_AUTH"]));
        let org = args
            .org
            .clone()
            .or_else(|| from_env(&["HZN_ORG_ID"]))
            .or_else(|| user.as_deref().and_then(org_of_user));
        let authorization = user.map(|user| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user.as_bytes())
            )
        });
        let ca = args
            .ca
            .clone()
            .or_else(|| from_env(&["EDGE_SYNC_CA"]).map(PathBuf::from));
        let tls =
            crate::tls::command_line_client_config(ca.as_deref()).map_err(|e| ClientError::usage(e.to_string()))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::usage(format!("cannot set up HTTP: {e}")))?;
        let mut connection = Self {
            base,
            org: org.clone().unwrap_or_default(),
            ess: false,
            authorization,
            http,
        };
        let health = connection
            .get_json("asking the service's health", "/api/v1/health")
            .await?;
        connection.ess = health["general"]["nodeType"].as_str() == Some("ESS");
        if !connection.ess && org.is_none() {
            return Err(ClientError::usage("no organization: give --org or set HZN_ORG_ID"));
        }
        Ok(connection)
    }

    /// How objects are named in messages: `org/type/id`, or `type/id` on an ESS whose org
    /// was not given.
    pub fn name_of(&self, object_type: &str, object_id: &str) -> String {
        if self.org.is_empty() {
            format!("{object_type}/{object_id}")
        } else {
            format!("{}/{object_type}/{object_id}", self.org)
        }
    }

    /// The service's URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (starting with `/api/v1/`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.authorization {
            Some(value) => builder.header(reqwest::header::AUTHORIZATION, value),
            None => builder,
        }
    }

    /// `/api/v1/objects/{org}/{type}/{id}` (on an ESS without the org), each segment escaped.
    pub fn object_path(&self, object_type: &str, object_id: &str) -> String {
        format!("{}/{}", self.type_path(object_type), escape(object_id))
    }

    /// `/api/v1/objects/{org}/{type}` (on an ESS without the org).
    pub fn type_path(&self, object_type: &str) -> String {
        if self.ess {
            format!("/api/v1/objects/{}", escape(object_type))
        } else {
            format!("/api/v1/objects/{}/{}", escape(&self.org), escape(object_type))
        }
    }

    /// `GET path`, which must answer 200 with JSON.
    pub async fn get_json(&self, what: &str, path: &str) -> ClientResult<serde_json::Value> {
        let response = self
            .expect(what, self.request(Method::GET, path), &[StatusCode::OK])
            .await?;
        json_of(what, response).await
    }

    /// Sends a request; a failure to get any answer is an error, every answer is returned.
    pub async fn send(&self, what: &str, request: RequestBuilder) -> ClientResult<Response> {
        request.send().await.map_err(|e| ClientError::network(what, &e))
    }

    /// Sends a request and requires one of `expected`; another status is an error carrying
    /// the service's plain-text reason.
    pub async fn expect(&self, what: &str, request: RequestBuilder, expected: &[StatusCode]) -> ClientResult<Response> {
        let response = self.send(what, request).await?;
        if expected.contains(&response.status()) {
            return Ok(response);
        }
        Err(refusal(what, response).await)
    }
}

/// The JSON body of an answer.
pub async fn json_of(what: &str, response: Response) -> ClientResult<serde_json::Value> {
    let body = response.bytes().await.map_err(|e| ClientError::network(what, &e))?;
    serde_json::from_slice(&body).map_err(|e| ClientError::refused(format!("{what}: the answer is not JSON: {e}")))
}

/// The error for an unexpected answer: its status and the first line of its body.
pub async fn refusal(what: &str, response: Response) -> ClientError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let reason = body.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("");
    let message = match (status, reason) {
        (StatusCode::NOT_FOUND, "") => format!("{what}: not found"),
        (StatusCode::UNAUTHORIZED, "") | (StatusCode::FORBIDDEN, "") => {
            format!("{what}: not allowed ({status}); check --user-pw")
        }
        (_, "") => format!("{what}: the service answered {status}"),
        (_, reason) => format!("{what}: {reason} ({status})"),
    };
    ClientError::refused(message)
}

/// The org of a user written `org/name:password`.
fn org_of_user(user: &str) -> Option<String> {
    let name = user.split(':').next()?;
    let (org, _) = name.split_once('/')?;
    (!org.is_empty()).then(|| org.to_string())
}

/// Percent-escapes a path segment (names may hold characters a URL path cannot).
pub fn escape(segment: &str) -> String {
    let mut escaped = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => escaped.push(byte as char),
            other => escaped.push_str(&format!("%{other:02X}")),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped_and_orgs_read_from_users() {
        assert_eq!(escape("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(escape("model-1.bin"), "model-1.bin");
        assert_eq!(org_of_user("myorg/alice:secret").as_deref(), Some("myorg"));
        assert_eq!(org_of_user("alice:secret"), None);
    }
}
