//! The authorization matrix (security.md §4.1 and §4.2, with the flaw fixes applied) checked
//! cell by cell against the running binary: every identity class, own and other org, against
//! one representative request per route group, on the CSS (before and after ACL grants) and
//! on the ESS. Every cell runs; the test then fails once, listing every mismatch.

mod common;
#[path = "access_matrix/table.rs"]
mod table;

use common::{object_body, Api, NodeOptions, Role, TestNode};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use table::*;

/// One node under test, its fixtures and the cells checked so far.
struct Matrix {
    api: Api,
    role: Role,
    fresh: usize,
    cells: usize,
    failures: Vec<String>,
}

/// Status and body, or why there was no answer.
type Reply = Result<(u16, Vec<u8>), String>;

fn status_text(reply: &Reply) -> String {
    match reply {
        Ok((status, _)) => status.to_string(),
        Err(e) => format!("no answer ({e})"),
    }
}

impl Matrix {
    fn new(node: &TestNode) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client");
        Self {
            api: Api {
                client,
                base: node.base(),
            },
            role: node.role,
            fresh: 0,
            cells: 0,
            failures: Vec::new(),
        }
    }

    fn type_path(&self, object_type: &str) -> String {
        match self.role {
            Role::Css => format!("/api/v1/objects/{OWN}/{object_type}"),
            Role::Ess => format!("/api/v1/objects/{object_type}"),
        }
    }

    fn obj(&self, object_type: &str, object_id: &str) -> String {
        format!("{}/{object_id}", self.type_path(object_type))
    }

    async fn call(&self, method: Method, path: &str, who: Option<&str>, body: Option<String>) -> Reply {
        let mut request = self.api.request(method, path, who);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, body.to_vec()))
    }

    /// A setup request that must answer 204; panics otherwise (nothing else would mean much).
    async fn must(&self, method: Method, path: &str, who: &str, body: Value) {
        let reply = self.call(method.clone(), path, Some(who), Some(body.to_string())).await;
        let detail = reply.as_ref().map(|(_, b)| String::from_utf8_lossy(b).into_owned());
        assert!(
            matches!(reply, Ok((204, _))),
            "setup {method} {path} as {who}: {} {detail:?}",
            status_text(&reply)
        );
    }

    /// A setup request whose failure is recorded (routes still being implemented).
    async fn try_setup(&mut self, method: Method, path: &str, who: &str, body: Value) {
        let reply = self.call(method.clone(), path, Some(who), Some(body.to_string())).await;
        if !matches!(reply, Ok((204, _))) {
            self.failures.push(format!(
                "setup: {method} {path} as {who}: expected 204, got {}",
                status_text(&reply)
            ));
        }
    }

    /// Creates `model/{id}` as [`OWNER`] with data.
    async fn create(&self, object_type: &str, id: &str, meta: Value) -> String {
        let path = self.obj(object_type, id);
        self.must(Method::PUT, &path, OWNER, object_body(&path, meta, Some(id.as_bytes())))
            .await;
        path
    }

    /// A private object of type `model` no other cell touches.
    async fn fresh_object(&mut self) -> String {
        self.fresh += 1;
        let id = format!("c{}", self.fresh);
        self.create("model", &id, json!({})).await
    }

    /// The fixtures: private `model/priv`, public `model/pub`, private `secret/sec`, and on
    /// the CSS the organizations `org1` and `org2`.
    async fn setup(&self) {
        if self.role == Role::Css {
            for org in [OWN, OTHER] {
                let path = format!("/api/v1/organizations/{org}");
                self.must(Method::PUT, &path, SYNC_ADMIN, json!({ "orgID": org })).await;
            }
        }
        self.create("model", "priv", json!({})).await;
        self.create("model", "pub", json!({"public": true})).await;
        self.create("secret", "sec", json!({})).await;
    }

    /// The grants of the second CSS pass (security.md §6), made by the org admin.
    async fn grant(&mut self) {
        let objects = json!({"action": "add", "users": [
            {"Username": "bob", "ACLUserType": "user", "ACLRole": "aclWriter"},
            {"Username": "n1", "ACLUserType": "node", "ACLRole": "aclReader"},
        ]});
        let path = format!("/api/v1/security/objects/{OWN}/model");
        self.try_setup(Method::PUT, &path, OWNER, objects).await;
        let destinations = json!({"action": "add", "users": [{"Username": "bob", "ACLUserType": "user"}]});
        let path = format!("/api/v1/security/destinations/{OWN}");
        self.try_setup(Method::PUT, &path, OWNER, destinations).await;
    }

    /// Sends one request; returns (request, observed status).
    async fn single(&self, method: Method, path: String, who: Option<&str>, body: Option<Value>) -> (String, String) {
        let reply = self.call(method.clone(), &path, who, body.map(|b| b.to_string())).await;
        (format!("{method} {path}"), status_text(&reply))
    }

    /// GETs a listing; a 200 is shown with the fixture names it contains.
    async fn listing(&self, path: String, who: Option<&str>, names: fn(&Value) -> Option<String>) -> (String, String) {
        let reply = self.call(Method::GET, &path, who, None).await;
        let observed = match &reply {
            Ok((200, body)) => match serde_json::from_slice::<Value>(body) {
                Ok(Value::Array(items)) => {
                    let mut found: Vec<String> = items.iter().filter_map(names).collect();
                    found.sort();
                    found.dedup();
                    format!("200 [{}]", found.join(", "))
                }
                _ => format!(
                    "200 with a body that is no JSON array: {}",
                    String::from_utf8_lossy(body)
                ),
            },
            other => status_text(other),
        };
        (format!("GET {path}"), observed)
    }

    /// Runs the representative request of `group` as `who`.
    async fn observe(&mut self, group: Group, who: Option<&str>) -> (String, String) {
        let private = self.obj("model", "priv");
        let none = None;
        match group {
            Health => self.single(Method::GET, "/api/v1/health".into(), who, none).await,
            Resend => self.single(Method::POST, "/api/v1/resend".into(), who, none).await,
            Shutdown => self.single(Method::POST, "/api/v1/shutdown".into(), who, none).await,
            DestList => {
                let path = match self.role {
                    Role::Css => format!("/api/v1/destinations/{OWN}"),
                    Role::Ess => "/api/v1/destinations".into(),
                };
                self.single(Method::GET, path, who, none).await
            }
            OrgList => {
                let org_id = |v: &Value| v["org-id"].as_str().map(str::to_string);
                self.listing("/api/v1/organizations".into(), who, org_id).await
            }
            OrgPut => {
                let path = format!("/api/v1/organizations/{OWN}");
                self.single(Method::PUT, path, who, Some(json!({ "orgID": OWN }))).await
            }
            OrgDelete => {
                let path = format!("/api/v1/organizations/{OWN}");
                if self.role == Role::Css {
                    self.must(Method::PUT, &path, SYNC_ADMIN, json!({ "orgID": OWN })).await;
                }
                self.single(Method::DELETE, path, who, none).await
            }
            Security => {
                // Idempotent: a destinations ACL for a type nothing uses.
                let path = format!("/api/v1/security/destinations/{OWN}/probe");
                let body = json!({"action": "add", "users": [{"Username": "nobody", "ACLUserType": "user"}]});
                self.single(Method::PUT, path, who, Some(body)).await
            }
            GetMeta | GetStatus | GetData => {
                let suffix = match group {
                    GetStatus => "/status",
                    GetData => "/data",
                    _ => "",
                };
                let public_path = format!("{}{suffix}", self.obj("model", "pub"));
                let public = status_text(&self.call(Method::GET, &public_path, who, None).await);
                let hidden = status_text(&self.call(Method::GET, &format!("{private}{suffix}"), who, None).await);
                (
                    format!("GET {}{{pub,priv}}{suffix}", self.obj("model", "")),
                    format!("public {public}, private {hidden}"),
                )
            }
            AllObjects => {
                let path = format!("{}?all_objects=true", self.type_path("model"));
                self.listing(path, who, fixture_id).await
            }
            Filters => {
                let path = format!("/api/v1/objects/{OWN}?filters=true");
                self.listing(path, who, fixture_id).await
            }
            ListTypes => {
                let path = format!("/api/v1/objects/{OWN}?list_object_type=true");
                let fixture_type = |v: &Value| {
                    v.as_str()
                        .filter(|t| ["model", "secret"].contains(t))
                        .map(str::to_string)
                };
                self.listing(path, who, fixture_type).await
            }
            PutObject => {
                self.fresh += 1;
                let path = self.obj("model", &format!("c{}", self.fresh));
                let body = object_body(&path, json!({}), Some(b"by the caller"));
                self.single(Method::PUT, path, who, Some(body)).await
            }
            PutData => {
                let path = format!("{}/data", self.fresh_object().await);
                let reply = self.call(Method::PUT, &path, who, Some("new data".into())).await;
                (format!("PUT {path}"), status_text(&reply))
            }
            Delete => {
                let path = self.fresh_object().await;
                self.single(Method::DELETE, path, who, none).await
            }
            PutDest => {
                let path = format!("{private}/destinations");
                self.single(Method::PUT, path, who, Some(json!([]))).await
            }
            PostDest => {
                let path = format!("{private}/destinations");
                let body = json!({"action": "add", "destinations": []});
                self.single(Method::POST, path, who, Some(body)).await
            }
            Activate => self.single(Method::PUT, format!("{private}/activate"), who, none).await,
            Consumed => self.single(Method::PUT, format!("{private}/consumed"), who, none).await,
            Webhook => {
                let body = json!({"action": "register", "url": "http://127.0.0.1:9/hook"});
                self.single(Method::PUT, self.type_path("model"), who, Some(body)).await
            }
        }
    }

    /// Checks every cell of `rows` for `phase`, recording mismatches.
    async fn run(&mut self, phase: Phase, rows: impl Iterator<Item = &Row>) {
        for row in rows {
            for (column, (label, key)) in WHO.iter().enumerate() {
                let expect = phase.expect(row, column);
                if expect == Skip {
                    continue;
                }
                let wanted = expected_text(row.group, expect);
                let (request, observed) = self.observe(row.group, *key).await;
                self.cells += 1;
                if observed != wanted {
                    self.failures.push(format!(
                        "[{}] {:?} | {label} ({}) | {request}: expected {expect:?} = {wanted}, got {observed}",
                        phase.label(),
                        row.group,
                        key.unwrap_or("-"),
                    ));
                }
            }
        }
    }

    fn finish(self, role: &str) {
        println!(
            "{role}: {} cells checked, {} mismatches",
            self.cells,
            self.failures.len()
        );
        assert!(
            self.failures.is_empty(),
            "{role}: {} of {} cells differ from the matrix:\n{}",
            self.failures.len(),
            self.cells,
            self.failures.join("\n")
        );
    }
}

/// `objectID` of a fixture object in a listing (`priv`, `pub`, `sec`).
fn fixture_id(item: &Value) -> Option<String> {
    item["objectID"]
        .as_str()
        .filter(|id| ["priv", "pub", "sec"].contains(id))
        .map(str::to_string)
}

#[tokio::test]
async fn css_matrix() {
    let node = TestNode::css();
    let mut matrix = Matrix::new(&node);
    matrix.setup().await;
    let before_org_delete = || ROWS.iter().filter(|r| r.group != OrgDelete);
    matrix.run(Phase::CssNoAcl, before_org_delete()).await;
    matrix.grant().await;
    matrix.run(Phase::CssAcl, before_org_delete()).await;
    // The same with or without ACLs; run once, at the very end.
    matrix
        .run(Phase::CssAcl, ROWS.iter().filter(|r| r.group == OrgDelete))
        .await;
    matrix.finish("CSS");
}

#[tokio::test]
async fn ess_matrix() {
    let mut options = NodeOptions::new(Role::Ess);
    options.env.push(("ORG_ID".into(), OWN.into()));
    let node = TestNode::start(options);
    let mut matrix = Matrix::new(&node);
    matrix.setup().await;
    matrix.run(Phase::Ess, ROWS.iter()).await;
    matrix.finish("ESS");
}
