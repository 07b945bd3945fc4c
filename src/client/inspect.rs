//! The reading commands and `delete`: `object list`, `object status`, `object watch`,
//! `object destinations`, `object delete` and `nodes`.

use super::connection::{escape, json_of, ClientError, ClientResult, Connection};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One object, as `-t TYPE -i ID`.
#[derive(Debug, Clone, clap::Args)]
pub struct ObjectName {
    /// Object type
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub object_type: String,
    /// Object ID
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub object_id: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only objects of this type
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub object_type: Option<String>,
    /// Only the object of this ID (with --type)
    #[arg(short = 'i', long = "id", value_name = "ID", requires = "object_type")]
    pub object_id: Option<String>,
    /// Only objects addressed to this destination type
    #[arg(long = "dest-type", value_name = "TYPE")]
    pub destination_type: Option<String>,
    /// The whole metadata of each object, as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub object: ObjectName,
    /// The summary as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub object: ObjectName,
    /// The state every destination must reach (or pass): delivering, delivered or consumed
    #[arg(long, value_name = "STATE", default_value = "delivered", value_parser = ["delivering", "delivered", "consumed"])]
    pub until: String,
    /// Seconds to wait before giving up (exit 1)
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,
    /// Seconds between two looks
    #[arg(long, value_name = "SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TableArgs {
    /// As JSON
    #[arg(long)]
    pub json: bool,
}

/// How far along the delivery states are, for `watch --until`.
fn rank(state: &str) -> Option<u8> {
    match state {
        "pending" => Some(0),
        "delivering" => Some(1),
        "delivered" => Some(2),
        "consumed" => Some(3),
        _ => None,
    }
}

pub async fn list(connection: &Connection, args: &ListArgs) -> ClientResult<()> {
    let mut query = vec![("filters", "true".to_string())];
    if let Some(object_type) = &args.object_type {
        query.push(("objectType", object_type.clone()));
    }
    if let Some(object_id) = &args.object_id {
        query.push(("objectID", object_id.clone()));
    }
    if let Some(destination_type) = &args.destination_type {
        query.push(("destinationType", destination_type.clone()));
    }
    let objects = if connection.ess {
        ess_objects(connection, args).await?
    } else {
        let request = connection
            .request(Method::GET, &format!("/api/v1/objects/{}", escape(&connection.org)))
            .query(&query);
        json_or_empty(connection, "listing the objects", request).await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&objects).unwrap_or_default());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = objects
        .as_array()
        .into_iter()
        .flatten()
        .map(|meta| {
            vec![
                text(meta, "objectType"),
                text(meta, "objectID"),
                text(meta, "version"),
                if meta["noData"].as_bool() == Some(true) {
                    "-".into()
                } else {
                    super::progress::size(meta["objectSize"].as_u64().unwrap_or(0))
                },
                addressed_to(meta),
            ]
        })
        .collect();
    print!("{}", table(&["TYPE", "ID", "VERSION", "SIZE", "DESTINATIONS"], &rows));
    Ok(())
}

/// An ESS has no search: the objects of one type, each one's metadata read in turn (an
/// ESS holds few).
async fn ess_objects(connection: &Connection, args: &ListArgs) -> ClientResult<Value> {
    let Some(object_type) = &args.object_type else {
        return Err(ClientError::usage("an ESS lists the objects of one type: give -t"));
    };
    let request = connection
        .request(Method::GET, &connection.type_path(object_type))
        .query(&[("all_objects", "true")]);
    let listed = json_or_empty(connection, "listing the objects", request).await?;
    let mut objects = Vec::new();
    for entry in listed.as_array().into_iter().flatten() {
        let object_id = text(entry, "objectID");
        if args.object_id.as_ref().is_some_and(|wanted| *wanted != object_id) {
            continue;
        }
        let path = connection.object_path(object_type, &object_id);
        objects.push(connection.get_json("reading the metadata", &path).await?);
    }
    Ok(Value::Array(objects))
}

pub async fn status(connection: &Connection, args: &StatusArgs) -> ClientResult<()> {
    let summary = summary(connection, &args.object).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary.json()).unwrap_or_default());
    } else {
        print!("{}", summary.text());
    }
    Ok(())
}

pub async fn watch(connection: &Connection, args: &WatchArgs) -> ClientResult<()> {
    let wanted = rank(&args.until).unwrap_or(2);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut last = String::new();
    loop {
        let summary = summary(connection, &args.object).await?;
        let line = summary.counts_line();
        if line != last {
            println!("{line}");
            last = line;
        }
        let reached = !summary.destinations.is_empty()
            && summary
                .destinations
                .iter()
                .all(|d| rank(&d.status).is_some_and(|r| r >= wanted));
        if reached {
            println!("every destination is {} or further", args.until);
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ClientError::refused(format!(
                "not every destination reached {} within {} s: {}",
                args.until,
                args.timeout,
                summary.counts_line()
            )));
        }
        tokio::time::sleep(Duration::from_secs(args.interval)).await;
    }
}

pub async fn destinations(connection: &Connection, object: &ObjectName, args: &TableArgs) -> ClientResult<()> {
    let summary = summary(connection, object).await?;
    if args.json {
        let list: Vec<Value> = summary.destinations.iter().map(Destination::json).collect();
        println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = summary
        .destinations
        .iter()
        .map(|d| {
            vec![
                d.destination_type.clone(),
                d.destination_id.clone(),
                d.status.clone(),
                d.message.clone(),
            ]
        })
        .collect();
    print!("{}", table(&["DEST TYPE", "DEST ID", "STATUS", "MESSAGE"], &rows));
    Ok(())
}

pub async fn delete(connection: &Connection, object: &ObjectName) -> ClientResult<()> {
    let path = connection.object_path(&object.object_type, &object.object_id);
    connection
        .expect(
            "deleting the object",
            connection.request(Method::DELETE, &path),
            &[StatusCode::NO_CONTENT, StatusCode::OK],
        )
        .await?;
    eprintln!(
        "{}: deleted",
        connection.name_of(&object.object_type, &object.object_id)
    );
    Ok(())
}

pub async fn nodes(connection: &Connection, args: &TableArgs) -> ClientResult<()> {
    if connection.ess {
        return Err(ClientError::usage(
            "only a CSS has registered nodes; this service is an ESS",
        ));
    }
    let request = connection.request(
        Method::GET,
        &format!("/api/v1/destinations/{}", escape(&connection.org)),
    );
    let nodes = json_or_empty(connection, "listing the nodes", request).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&nodes).unwrap_or_default());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = nodes
        .as_array()
        .into_iter()
        .flatten()
        .map(|node| {
            vec![
                text(node, "destinationType"),
                text(node, "destinationID"),
                text(node, "communication"),
                text(node, "codeVersion"),
            ]
        })
        .collect();
    print!("{}", table(&["DEST TYPE", "DEST ID", "PROTOCOL", "VERSION"], &rows));
    Ok(())
}

/// One destination's delivery state.
struct Destination {
    destination_type: String,
    destination_id: String,
    status: String,
    message: String,
}

impl Destination {
    fn json(&self) -> Value {
        json!({
            "destinationType": self.destination_type,
            "destinationID": self.destination_id,
            "status": self.status,
            "message": self.message,
        })
    }
}

/// An object's status and its destinations' states.
struct Summary {
    name: String,
    status: String,
    destinations: Vec<Destination>,
}

impl Summary {
    fn counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for destination in &self.destinations {
            *counts.entry(destination.status.as_str()).or_default() += 1;
        }
        counts
    }

    fn counts_line(&self) -> String {
        let mut line = format!("{}: {} destinations", self.name, self.destinations.len());
        for (state, count) in self.counts() {
            let _ = write!(line, ", {count} {state}");
        }
        line
    }

    fn text(&self) -> String {
        let mut text = format!("{}: {}\n{}\n", self.name, self.status, self.counts_line());
        for destination in self.destinations.iter().filter(|d| d.status == "error") {
            let _ = writeln!(
                text,
                "error at {}/{}: {}",
                destination.destination_type, destination.destination_id, destination.message
            );
        }
        text
    }

    fn json(&self) -> Value {
        json!({
            "object": self.name,
            "status": self.status,
            "destinations": self.destinations.len(),
            "states": self.counts(),
            "errors": self.destinations.iter().filter(|d| d.status == "error").map(Destination::json).collect::<Vec<_>>(),
        })
    }
}

async fn summary(connection: &Connection, object: &ObjectName) -> ClientResult<Summary> {
    let path = connection.object_path(&object.object_type, &object.object_id);
    let name = connection.name_of(&object.object_type, &object.object_id);
    let status = connection
        .expect(
            "reading the object's status",
            connection.request(Method::GET, &format!("{path}/status")),
            &[StatusCode::OK],
        )
        .await?
        .text()
        .await
        .unwrap_or_default();
    let request = connection.request(Method::GET, &format!("{path}/destinations"));
    let list = json_or_empty(connection, "reading the destinations", request).await?;
    let destinations = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| Destination {
            destination_type: text(d, "destinationType"),
            destination_id: text(d, "destinationID"),
            status: text(d, "status"),
            message: text(d, "message"),
        })
        .collect();
    Ok(Summary {
        name,
        status,
        destinations,
    })
}

/// A JSON answer; `404`, which the service answers for an empty list, is an empty array.
async fn json_or_empty(connection: &Connection, what: &str, request: reqwest::RequestBuilder) -> ClientResult<Value> {
    let response = connection
        .expect(what, request, &[StatusCode::OK, StatusCode::NOT_FOUND])
        .await?;
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(json!([]));
    }
    json_of(what, response).await
}

fn text(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Who an object is addressed to, in a few words.
fn addressed_to(meta: &Value) -> String {
    if let Some(list) = meta["destinationsList"].as_array().filter(|l| !l.is_empty()) {
        return format!("{} listed", list.len());
    }
    match (text(meta, "destinationType"), text(meta, "destinationID")) {
        (t, _) if t.is_empty() => {
            if meta["destinationPolicy"].is_object() {
                "by policy".into()
            } else {
                "all nodes".into()
            }
        }
        (t, id) if id.is_empty() => format!("{t} (all)"),
        (t, id) => format!("{t}/{id}"),
    }
}

/// Columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_and_objects_say_who_gets_them() {
        let rows = vec![vec!["model".to_string(), "m1".to_string()]];
        assert_eq!(table(&["TYPE", "ID"], &rows), "TYPE   ID\nmodel  m1\n");
        assert_eq!(addressed_to(&json!({"destinationType": "edge"})), "edge (all)");
        assert_eq!(
            addressed_to(&json!({"destinationType": "edge", "destinationID": "n1"})),
            "edge/n1"
        );
        assert_eq!(addressed_to(&json!({"destinationsList": ["a:b", "c:d"]})), "2 listed");
        assert_eq!(addressed_to(&json!({})), "all nodes");
    }

    #[test]
    fn delivery_states_are_ordered_for_watch() {
        assert!(rank("consumed") > rank("delivered"));
        assert!(rank("delivered") > rank("pending"));
        assert_eq!(rank("error"), None);
    }
}
