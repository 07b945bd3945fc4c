//! An edge node speaking `/spi/v1` the way an ESS does, scripted by a test: registration,
//! polls and actions, each answered with its status.

use super::TestNode;
use serde_json::Value;
use std::time::Duration;

/// An edge node speaking the protocol the way an ESS does.
pub struct FakeEss {
    base: String,
    client: reqwest::Client,
    key: String,
    /// `org/type/id`, the `X-Sync-Service-Dest` header.
    pub dest: String,
}

impl FakeEss {
    pub fn new(css: &TestNode, org: &str, dest_type: &str, dest_id: &str) -> Self {
        Self {
            base: css.base(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            key: format!("{org}/{dest_type}/{dest_id}"),
            dest: format!("{org}/{dest_type}/{dest_id}"),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.key, Some(""))
            .header("X-Sync-Service-Dest", &self.dest)
    }

    pub async fn put(&self, path: &str) -> u16 {
        self.request(reqwest::Method::PUT, path)
            .send()
            .await
            .expect("PUT")
            .status()
            .as_u16()
    }

    pub async fn register(&self, as_new: bool) -> u16 {
        let kind = if as_new { "register-new" } else { "register" };
        self.put(&format!("/spi/v1/{kind}/{}?persistent-storage=true", self.dest))
            .await
    }

    /// Polls once; `(status, items)`.
    pub async fn poll(&self, wait: Option<u64>) -> (u16, Vec<Value>) {
        let path = match wait {
            Some(seconds) => format!("/spi/v1/objects/?wait={seconds}"),
            None => "/spi/v1/objects/".to_string(),
        };
        let response = self.request(reqwest::Method::GET, &path).send().await.expect("poll");
        let status = response.status().as_u16();
        let items = if status == 200 {
            serde_json::from_slice(&response.bytes().await.expect("poll body")).expect("poll JSON")
        } else {
            Vec::new()
        };
        (status, items)
    }

    pub async fn action(&self, meta: &Value, action: &str) -> u16 {
        let path = object_path(meta, action);
        self.put(&path).await
    }
}

/// `/spi/v1/objects/...` path of an action (`tail`) about the object `meta` describes.
pub fn object_path(meta: &Value, tail: &str) -> String {
    format!(
        "/spi/v1/objects/{}/{}/{}/{}/{}/{tail}",
        meta["destinationOrgID"].as_str().unwrap(),
        meta["objectType"].as_str().unwrap(),
        meta["objectID"].as_str().unwrap(),
        meta["instanceID"],
        meta["dataID"]
    )
}
