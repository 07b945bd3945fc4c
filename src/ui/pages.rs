//! The three pages: objects with their delivery counts, one object's destinations, nodes.
//! Each returns its `<main>` content; [`super`] wraps it in the shell or sends it alone to a
//! refresh.

use super::html::{escape, href, pager, time};
use super::PAGE_SIZE;
use crate::engine::{LinkCondition, LinkReport, LinkState, NodeView, ObjectSummary};
use crate::model::DeliveryStatus;
use crate::store::fleet::{DeliveryRow, Paged};
use std::fmt::Write;

/// Where a listing is: its org, search and 1-based page.
pub struct Place<'a> {
    pub org: &'a str,
    pub search: &'a str,
    pub page: u64,
}

/// The objects of an org. With `counts` (the CSS) a column per delivery state.
pub fn objects(place: &Place<'_>, objects: &Paged<ObjectSummary>, counts: bool) -> String {
    let mut out =
        String::from("<table class=\"objects\"><thead><tr><th>Type</th><th>ID</th><th>Version</th><th>Status</th>");
    if counts {
        for status in DeliveryStatus::ALL {
            let _ = write!(out, "<th class=\"n\">{}</th>", status.as_str());
        }
        out.push_str("<th class=\"n\">destinations</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for object in &objects.rows {
        let link = href(
            "/ui/object",
            &[
                ("org", place.org),
                ("type", &object.object_type),
                ("id", &object.object_id),
            ],
        );
        let _ = write!(
            out,
            "<tr data-object=\"{name}\"><td>{object_type}</td><td><a href=\"{link}\">{object_id}</a></td>\
             <td>{version}</td><td>{status}{origin}</td>",
            name = escape(&format!("{}/{}", object.object_type, object.object_id)),
            object_type = escape(&object.object_type),
            object_id = escape(&object.object_id),
            link = escape(&link),
            version = escape(&object.version),
            status = escape(object.status.as_str()),
            origin = if object.sent_from_here {
                ""
            } else {
                " <small>(received)</small>"
            },
        );
        if counts {
            out.push_str(&count_cells(object));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out.push_str(&pager(objects.total, place.page, PAGE_SIZE, |page| {
        href(
            "/ui",
            &[("org", place.org), ("q", place.search), ("page", &page.to_string())],
        )
    }));
    out
}

fn count_cells(object: &ObjectSummary) -> String {
    let mut out = String::new();
    for status in DeliveryStatus::ALL {
        let count = object.counts.get(status);
        let class = if count > 0 && status == DeliveryStatus::Error {
            "n bad"
        } else {
            "n"
        };
        let _ = write!(
            out,
            "<td class=\"{class}\" data-state=\"{}\">{count}</td>",
            status.as_str()
        );
    }
    let _ = write!(
        out,
        "<td class=\"n\" data-state=\"total\">{}</td>",
        object.counts.total()
    );
    out
}

/// One object: its counts, and a page of its destinations (the CSS).
pub fn object(place: &Place<'_>, object: &ObjectSummary, deliveries: Option<&Paged<DeliveryRow>>) -> String {
    let mut out = format!(
        "<table class=\"summary\"><tbody><tr data-object=\"{name}\"><th>Version</th><td>{version}</td>\
         <th>Status</th><td>{status}</td></tr></tbody></table>",
        name = escape(&format!("{}/{}", object.object_type, object.object_id)),
        version = escape(&object.version),
        status = escape(object.status.as_str()),
    );
    let Some(deliveries) = deliveries else {
        return out;
    };
    out.push_str("<table class=\"counts\"><thead><tr>");
    for status in DeliveryStatus::ALL {
        let _ = write!(out, "<th class=\"n\">{}</th>", status.as_str());
    }
    out.push_str("<th class=\"n\">destinations</th></tr></thead><tbody><tr class=\"counts\">");
    out.push_str(&count_cells(object));
    out.push_str(
        "</tr></tbody></table><table class=\"deliveries\"><thead><tr><th>Destination</th><th>State</th>\
         <th>Last change</th><th>Message</th></tr></thead><tbody>",
    );
    for row in &deliveries.rows {
        let d = &row.delivery;
        let class = if d.status == DeliveryStatus::Error {
            " class=\"bad\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr data-destination=\"{name}\"><td>{name}</td><td{class} data-field=\"state\">{state}</td>\
             <td>{changed}</td><td>{message}</td></tr>",
            name = escape(&format!("{}/{}", d.dest_type, d.dest_id)),
            state = d.status.as_str(),
            changed = time(row.changed_at),
            message = escape(&d.message),
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&pager(deliveries.total, place.page, PAGE_SIZE, |page| {
        href(
            "/ui/object",
            &[
                ("org", place.org),
                ("type", &object.object_type),
                ("id", &object.object_id),
                ("q", place.search),
                ("page", &page.to_string()),
            ],
        )
    }));
    out
}

/// The registered nodes of an org.
pub fn nodes(place: &Place<'_>, nodes: &Paged<NodeView>) -> String {
    let mut out = String::from(
        "<table class=\"nodes\"><thead><tr><th>Node</th><th>Protocol</th><th>Version</th><th>Last heard</th>\
         <th>Link</th><th class=\"n\">Objects pending</th></tr></thead><tbody>",
    );
    for node in &nodes.rows {
        let d = &node.destination;
        let class = match node.link {
            LinkState::Online => "ok",
            LinkState::Late => "late",
            LinkState::Offline => "bad",
        };
        let _ = write!(
            out,
            "<tr data-node=\"{name}\"><td>{name}</td><td>{protocol}</td><td>{version}</td><td>{heard}</td>\
             <td class=\"{class}\" data-field=\"link\">{link}</td><td class=\"n\" data-field=\"pending\">{pending}</td></tr>",
            name = escape(&format!("{}/{}", d.dest_type, d.dest_id)),
            protocol = escape(&d.communication),
            version = escape(&d.code_version),
            heard = time(node.last_heard),
            link = node.link.as_str(),
            pending = node.pending,
        );
    }
    out.push_str("</tbody></table>");
    out.push_str(&pager(nodes.total, place.page, PAGE_SIZE, |page| {
        href(
            "/ui/nodes",
            &[("org", place.org), ("q", place.search), ("page", &page.to_string())],
        )
    }));
    out
}

/// An ESS's link to its CSS: its state since when, and the last error while not connected.
pub fn css_link(link: &LinkReport) -> String {
    let mut out = format!(
        "<p class=\"link\" data-field=\"css-link\">Link to the CSS: <strong class=\"{class}\">{state}</strong> since {since}",
        class = match link.condition {
            LinkCondition::Connected => "ok",
            LinkCondition::Retrying => "late",
            LinkCondition::Offline => "bad",
        },
        state = link.condition.as_str(),
        since = time(link.since),
    );
    if link.condition != LinkCondition::Connected {
        if let Some(error) = &link.last_error {
            let _ = write!(
                out,
                " · last error ({}) at {}: {}",
                error.reason.as_str(),
                time(error.at),
                escape(&error.message)
            );
        }
    }
    out.push_str("</p>");
    out
}

/// The organizations a sync admin can look at.
pub fn organizations(orgs: &[String]) -> String {
    let mut out = String::from("<ul class=\"orgs\">");
    for org in orgs {
        let _ = write!(
            out,
            "<li><a href=\"{}\">{}</a></li>",
            escape(&href("/ui", &[("org", org)])),
            escape(org)
        );
    }
    out.push_str("</ul>");
    if orgs.is_empty() {
        out.push_str("<p>No organization is stored yet: name one with <code>?org=</code>.</p>");
    }
    out
}
