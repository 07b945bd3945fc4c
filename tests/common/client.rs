//! The reqwest client the tests drive nodes with, as an application would.

use super::ADMIN;
use base64::Engine as _;
use std::time::{Duration, Instant};

/// A reqwest client bound to one node; every call has a timeout.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
}

/// A complete answer read through reqwest.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    }
}

impl Api {
    /// A request as `user` (None: no credentials).
    pub fn request(&self, method: reqwest::Method, path: &str, user: Option<&str>) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match user {
            Some(user) => builder.basic_auth(user, Some("secret")),
            None => builder,
        }
    }

    /// Sends and reads the whole answer.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Resp {
        let response = builder.send().await.expect("request failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("response body").to_vec();
        Resp { status, headers, body }
    }

    /// GET as [`ADMIN`].
    pub async fn get(&self, path: &str) -> Resp {
        self.get_as(ADMIN, path).await
    }

    /// GET as `user`.
    pub async fn get_as(&self, user: &str, path: &str) -> Resp {
        self.send(self.request(reqwest::Method::GET, path, Some(user))).await
    }

    /// PUT of a JSON body as `user`.
    pub async fn put_json_as(&self, user: &str, path: &str, body: &serde_json::Value) -> Resp {
        self.send(
            self.request(reqwest::Method::PUT, path, Some(user))
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// PUT of a JSON body as [`ADMIN`].
    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> Resp {
        self.put_json_as(ADMIN, path, body).await
    }

    /// PUT of raw bytes as [`ADMIN`].
    pub async fn put_bytes(&self, path: &str, body: Vec<u8>) -> Resp {
        self.send(self.request(reqwest::Method::PUT, path, Some(ADMIN)).body(body))
            .await
    }

    /// PUT with an empty body as `user` (operation routes).
    pub async fn put_empty_as(&self, user: &str, path: &str) -> Resp {
        self.send(self.request(reqwest::Method::PUT, path, Some(user))).await
    }

    /// DELETE as `user`.
    pub async fn delete_as(&self, user: &str, path: &str) -> Resp {
        self.send(self.request(reqwest::Method::DELETE, path, Some(user))).await
    }

    /// POST with an empty body as `user`.
    pub async fn post_as(&self, user: &str, path: &str) -> Resp {
        self.send(self.request(reqwest::Method::POST, path, Some(user))).await
    }

    /// PUT {obj} with `meta` (objectID/objectType filled in) and optional inline data; asserts 204.
    pub async fn create(&self, path: &str, meta: serde_json::Value, data: Option<&[u8]>) {
        let response = self.put_json(path, &object_body(path, meta, data)).await;
        assert_eq!(response.status, 204, "PUT {path}: {}", response.text());
    }

    /// The stored metadata of an object (asserts 200).
    pub async fn meta(&self, path: &str) -> serde_json::Value {
        let response = self.get(path).await;
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        response.json()
    }

    /// The status string of an object (asserts 200).
    pub async fn status_of(&self, path: &str) -> String {
        let response = self.get(&format!("{path}/status")).await;
        assert_eq!(response.status, 200, "GET {path}/status: {}", response.text());
        response.text()
    }

    /// Polls `{path}/status` until it is `want`; panics after 20 s.
    pub async fn wait_status(&self, path: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status_of(path).await;
            if status == want {
                return;
            }
            assert!(Instant::now() < deadline, "{path} stayed {status}, wanted {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a `PUT {path}/data` (one chunk of it with `content_range`) whose body the caller
    /// feeds part by part through the returned sender (dropping it ends the body); the request
    /// runs as a task of its own.
    pub fn put_data_streamed(
        &self,
        path: &str,
        content_range: Option<String>,
    ) -> (
        tokio::sync::mpsc::Sender<bytes::Bytes>,
        tokio::task::JoinHandle<Result<reqwest::Response, reqwest::Error>>,
    ) {
        let (sender, body) = channel_body();
        let mut request = self.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN));
        if let Some(range) = content_range {
            request = request.header("Content-Range", range);
        }
        (sender, tokio::spawn(request.body(body).send()))
    }

    /// The data of an object (asserts 200).
    pub async fn data(&self, path: &str) -> Vec<u8> {
        let response = self.get(&format!("{path}/data")).await;
        assert_eq!(response.status, 200, "GET {path}/data: {}", response.text());
        response.body
    }
}

/// `{"meta": meta + objectID/objectType from the path, "data": base64?}`.
pub fn object_body(path: &str, meta: serde_json::Value, data: Option<&[u8]>) -> serde_json::Value {
    let mut parts = path.rsplit('/');
    let object_id = parts.next().expect("id");
    let object_type = parts.next().expect("type");
    let mut meta = meta;
    let map = meta.as_object_mut().expect("meta is an object");
    map.entry("objectID").or_insert(object_id.into());
    map.entry("objectType").or_insert(object_type.into());
    let mut body = serde_json::json!({ "meta": meta });
    if let Some(data) = data {
        body["data"] = base64::engine::general_purpose::STANDARD.encode(data).into();
    }
    body
}

/// A request body fed through a channel, so a test decides when each part is sent and
/// when the body ends (drop the sender).
pub fn channel_body() -> (tokio::sync::mpsc::Sender<bytes::Bytes>, reqwest::Body) {
    let (sender, receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), receiver))
    });
    (sender, reqwest::Body::wrap_stream(stream))
}
