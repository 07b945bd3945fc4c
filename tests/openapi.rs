//! `openapi.yaml` against the code and against running nodes:
//! - the document is well formed (OpenAPI 3.0.3, every operation described, every `$ref` and
//!   path parameter resolved);
//! - its operations are exactly the route table of the server (`api::routes::ROUTES`, which
//!   the library's unit tests hold against the dispatchers), and the routing functions (the
//!   SPI's from the HTTP transport) recognise each documented path as its operation;
//! - its walkthrough (`x-walkthrough`), which uses every operation on every role that has it,
//!   gets the documented statuses from a real CSS and ESS syncing with each other, and no
//!   answer is a routing failure.

mod common;

use common::sync::{http_ess, wait_for, SYNC_DEADLINE};
use common::{basic, TestNode};
use edge_sync_service::api::routes::{recognise, ROUTES};
use edge_sync_service::transport::http::css::recognise as recognise_spi;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const DOCUMENT: &str = include_str!("../openapi.yaml");
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// The document as JSON values (anchors and aliases resolved).
fn document() -> Value {
    serde_yaml_ng::from_str(DOCUMENT).expect("openapi.yaml is valid YAML")
}

/// One operation of the document.
struct Operation {
    id: String,
    method: String,
    /// Path per role that has the route (works or refuses there).
    paths: BTreeMap<&'static str, String>,
    works_on: BTreeSet<String>,
    refused_on: BTreeSet<String>,
    spec: Value,
}

fn role_names(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .map(|r| r.as_str().expect("role name").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let ess_path = item
            .get("x-ess-path")
            .and_then(Value::as_str)
            .unwrap_or(path)
            .to_string();
        for method in METHODS {
            let Some(spec) = item.get(method) else { continue };
            let id = spec["operationId"].as_str().expect("operationId").to_string();
            let works_on = role_names(&spec["x-roles"]);
            let refused_on = role_names(&spec["x-refused-on"]);
            let mut paths = BTreeMap::new();
            for role in works_on.union(&refused_on) {
                match role.as_str() {
                    "css" => paths.insert("css", path.clone()),
                    "ess" => paths.insert("ess", ess_path.clone()),
                    other => panic!("{id}: unknown role {other}"),
                };
            }
            operations.push(Operation {
                id,
                method: method.to_uppercase(),
                paths,
                works_on,
                refused_on,
                spec: spec.clone(),
            });
        }
    }
    operations
}

fn role_key(role: edge_sync_service::model::Role) -> &'static str {
    match role {
        edge_sync_service::model::Role::Css => "css",
        edge_sync_service::model::Role::Ess => "ess",
    }
}

/// Follows a local `$ref` (`#/a/b`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

/// Names of the path parameters an operation declares (on the path item or itself).
fn path_parameters(doc: &Value, item: &Value, spec: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for list in [&item["parameters"], &spec["parameters"]] {
        for parameter in list.as_array().into_iter().flatten() {
            let parameter = match parameter.get("$ref").and_then(Value::as_str) {
                Some(r) => resolve(doc, r).expect("parameter $ref"),
                None => parameter,
            };
            if parameter["in"] == "path" {
                assert_eq!(parameter["required"], true, "path parameter {parameter}");
                names.insert(parameter["name"].as_str().expect("name").to_string());
            }
        }
    }
    names
}

fn template_names(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_document_is_well_formed() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["components"]["securitySchemes"]["appKey"]["scheme"], "basic");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for reference in refs {
        assert!(resolve(&doc, reference).is_some(), "unresolved $ref {reference}");
    }
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(spec) = item.get(method) else { continue };
            let id = spec["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            for field in ["summary", "description"] {
                assert!(
                    spec[field].as_str().is_some_and(|t| !t.trim().is_empty()),
                    "{id}: no {field}"
                );
            }
            assert!(spec["tags"].as_array().is_some_and(|t| !t.is_empty()), "{id}: no tag");
            assert!(spec["x-roles"].is_array(), "{id}: x-roles");
            let responses = spec["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{id}: responses"));
            let works = spec["x-roles"].as_array().is_some_and(|roles| !roles.is_empty());
            assert!(
                !works || responses.keys().any(|code| code.starts_with('2')),
                "{id}: no success"
            );
            assert_eq!(
                path_parameters(&doc, item, spec),
                template_names(path),
                "{id}: path parameters of {path}"
            );
            if path.starts_with("/spi/v1/") {
                assert_eq!(spec["tags"][0], "node-to-node", "{id}");
            }
        }
        if let Some(ess_path) = item.get("x-ess-path") {
            assert_eq!(
                ess_path.as_str(),
                Some(path.replacen("/{orgID}", "", 1).as_str()),
                "the ESS leaves the organization out"
            );
        }
    }
}

#[test]
fn the_document_lists_exactly_the_served_routes() {
    let doc = document();
    let documented: BTreeSet<(String, String, String, String)> = operations(&doc)
        .into_iter()
        .flat_map(|op| {
            op.paths
                .iter()
                .map(|(role, path)| (op.id.clone(), op.method.clone(), path.clone(), role.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let served: BTreeSet<(String, String, String, String)> = ROUTES
        .iter()
        .flat_map(|spec| {
            spec.roles.iter().map(|role| {
                (
                    spec.operation_id.to_string(),
                    spec.method.to_string(),
                    spec.path.to_string(),
                    role_key(*role).to_string(),
                )
            })
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "served but not documented: {undocumented:#?}");
    assert!(not_served.is_empty(), "documented but not served: {not_served:#?}");
}

/// A concrete path for a template, from the parameters' examples.
fn example_path(doc: &Value, template: &str) -> String {
    let mut examples = BTreeMap::new();
    for parameter in doc["components"]["parameters"].as_object().unwrap().values() {
        if let (Some(name), Some(example)) = (parameter["name"].as_str(), parameter.get("example")) {
            examples.insert(name.to_string(), text_of(example));
        }
    }
    examples.insert("aclUserType".into(), "user".into());
    examples.insert("username".into(), "bob".into());
    template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => examples
                    .get(name)
                    .unwrap_or_else(|| panic!("no example for {name}"))
                    .clone(),
                None => segment.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn the_routing_functions_recognise_every_documented_operation() {
    let doc = document();
    for op in operations(&doc) {
        for (role, template) in &op.paths {
            let role = match *role {
                "css" => edge_sync_service::model::Role::Css,
                _ => edge_sync_service::model::Role::Ess,
            };
            let path = example_path(&doc, template);
            let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
            assert_eq!(
                recognise(role, recognise_spi, &method, &path).ok(),
                Some(op.id.as_str()),
                "{role:?} {} {path}",
                op.method
            );
        }
    }
}

/// True for the answers of a request no route took: the router's own 404, a 405, or the
/// empty 400 of a path shape no dispatcher knows.
fn is_routing_failure(response: &common::Resp) -> bool {
    (response.status == 404 && response.text() == "404 page not found\n")
        || response.status == 405
        || (response.status == 400 && response.body.is_empty())
}

fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

#[tokio::test]
async fn the_walkthrough_succeeds_against_a_css_and_an_ess() {
    let doc = document();
    let operations: BTreeMap<String, Operation> = operations(&doc).into_iter().map(|op| (op.id.clone(), op)).collect();
    let walkthrough = &doc["x-walkthrough"];
    let steps = walkthrough["steps"].as_array().expect("walkthrough steps");
    let default_user = walkthrough["user"].as_str().expect("default user");

    // Every operation is used on every role that has it, with the kind of status its role gets.
    let mut covered = BTreeSet::new();
    for step in steps {
        let id = step["operation"].as_str().expect("operation");
        let role = step["role"].as_str().expect("role");
        let op = operations
            .get(id)
            .unwrap_or_else(|| panic!("walkthrough: unknown operation {id}"));
        let status = step["status"].as_u64().expect("status");
        assert_eq!(step["method"].as_str(), Some(op.method.as_str()), "{id}: method");
        if op.works_on.contains(role) {
            assert!((200..300).contains(&status), "{id} on {role} works: a 2xx example");
        } else {
            assert!(op.refused_on.contains(role), "{id} is not served on {role}");
            assert!((400..500).contains(&status), "{id} is refused on {role}");
        }
        assert!(
            op.spec["responses"].get(status.to_string()).is_some(),
            "{id}: status {status} is not documented"
        );
        covered.insert((id.to_string(), role.to_string()));
    }
    for op in operations.values() {
        for role in op.works_on.union(&op.refused_on) {
            assert!(
                covered.contains(&(op.id.clone(), role.clone())),
                "the walkthrough never uses {} on {role}",
                op.id
            );
        }
    }

    let mut css = TestNode::css();
    let upload_source = r#"[{"name": "logs", "folder": "logs", "patterns": ["*.log"],
        "objectType": "log", "triggers": {"explicit": true}}]"#;
    let mut ess = http_ess(css.port(), &[("ORG_ID", "myorg"), ("UPLOAD_SOURCES", upload_source)]);
    let mut captures: BTreeMap<String, String> = BTreeMap::new();
    for (index, step) in steps.iter().enumerate() {
        let id = step["operation"].as_str().unwrap();
        let role = step["role"].as_str().unwrap();
        let op = &operations[id];
        let node = if role == "css" { &css } else { &ess };
        let mut path = step["path"].as_str().expect("path").to_string();
        for (name, value) in &captures {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let bare = path.split('?').next().unwrap();
        assert!(
            matches_template(&op.paths[role], bare),
            "step {index}: {path} is not a path of {id} on {role}"
        );
        let want = step["status"].as_u64().unwrap() as u16;
        let user = step["user"].as_str().unwrap_or(default_user).to_string();
        let send = async || {
            let api = node.api();
            let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
            let mut request = api.request(method, &path, None);
            if !user.is_empty() {
                request = request.header("Authorization", basic(&user));
            }
            for (name, value) in step["headers"].as_object().into_iter().flatten() {
                request = request.header(name.as_str(), value.as_str().expect("header value"));
            }
            if let Some(json) = step.get("json") {
                request = request
                    .header("Content-Type", "application/json")
                    .body(json.to_string());
            } else if let Some(text) = step["text"].as_str() {
                request = request.body(text.to_string());
            }
            api.send(request).await
        };
        let response = if step["retry"] == true {
            let mut last = None;
            wait_for(
                &format!("step {index} ({id} on {role})"),
                &[&css, &ess],
                SYNC_DEADLINE,
                async || {
                    let response = send().await;
                    let done = response.status == want;
                    last = Some(response);
                    done
                },
            )
            .await;
            last.unwrap()
        } else {
            send().await
        };
        assert_eq!(
            response.status,
            want,
            "step {index}: {} {path} on {role}: {}",
            op.method,
            response.text()
        );
        assert!(!is_routing_failure(&response), "step {index}: {path} was not routed");
        if id == "getOpenApi" {
            assert_eq!(response.header("content-type").as_deref(), Some("application/yaml"));
            assert_eq!(response.text(), DOCUMENT, "the served document is this file");
        }
        if response.header("content-type").as_deref() == Some("application/json") {
            let json = response.json();
            for (name, pointer) in step["capture"].as_object().into_iter().flatten() {
                let value = json
                    .pointer(pointer.as_str().expect("pointer"))
                    .unwrap_or_else(|| panic!("step {index}: no {pointer} in {json}"));
                captures.insert(name.clone(), text_of(value));
            }
        }
    }
    // The walkthrough ends by stopping both nodes.
    for (name, node) in [("ESS", &mut ess), ("CSS", &mut css)] {
        assert!(
            node.wait_exit(Duration::from_secs(15)).is_some(),
            "the {name} did not stop after its shutdown"
        );
    }
}
