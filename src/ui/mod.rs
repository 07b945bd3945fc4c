//! The fleet status page, `/ui`: which objects reached which nodes, one object's
//! destinations, and the nodes with their links, for an operator's browser. Server-rendered
//! HTML with one small same-origin script that refreshes the page's `<main>` every few
//! seconds; no external resources, no build step. Behind the API's authentication: a browser
//! is asked for Basic credentials (401 with `WWW-Authenticate`), and what an identity may see
//! is decided by the same engine rules as the API's listings.

mod html;
mod pages;

use crate::api::error::ApiError;
use crate::api::request::identify;
use crate::api::AppState;
use crate::auth::{Identity, IdentityKind};
use crate::engine::EngineError;
use crate::model::{ObjectKey, Role};
use crate::store::fleet::PageRequest;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use html::{href, NavLink, Shell};
use pages::Place;
use serde::Deserialize;

/// Rows per page: a page of 10,000 nodes is read and rendered in a few milliseconds.
const PAGE_SIZE: u64 = 50;
/// Longest search text accepted.
const MAX_SEARCH: usize = 200;

/// What the pages' scripts and styles may do: nothing from elsewhere, no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page's routes, served beside the API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ui", get(objects_page))
        .route("/ui/object", get(object_page))
        .route("/ui/nodes", get(nodes_page))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .with_state(state)
}

/// The query parameters of the pages; each page reads the ones it needs.
#[derive(Deserialize, Default)]
struct PageQuery {
    org: Option<String>,
    #[serde(rename = "type")]
    object_type: Option<String>,
    id: Option<String>,
    q: Option<String>,
    page: Option<String>,
    /// Set by the refresh script: answer with the `<main>` content only.
    fragment: Option<String>,
}

impl PageQuery {
    fn page_request(&self) -> Result<(PageRequest, u64), PageError> {
        let search = self.q.clone().unwrap_or_default();
        if search.chars().count() > MAX_SEARCH {
            return Err(PageError::Invalid(format!(
                "the search is longer than {MAX_SEARCH} characters"
            )));
        }
        let page = match self.page.as_deref() {
            None | Some("") => 1,
            Some(text) => match text.parse::<u64>() {
                Ok(page) if (1..=u64::MAX / PAGE_SIZE).contains(&page) => page,
                _ => return Err(PageError::Invalid("page must be a whole number from 1".into())),
            },
        };
        let request = PageRequest {
            offset: (page - 1) * PAGE_SIZE,
            limit: PAGE_SIZE,
            search,
        };
        Ok((request, page))
    }

    fn fragment(&self) -> bool {
        self.fragment.is_some()
    }
}

/// Why a page is not shown.
enum PageError {
    /// No or wrong credentials: a 401 that makes a browser ask for them.
    Unauthenticated,
    /// A bad parameter: 400 with what is wrong.
    Invalid(String),
    /// Refused or not found by the engine, answered as the API answers it.
    Engine(EngineError),
}

impl From<EngineError> for PageError {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated => {
                let mut response = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"edge-sync-service\", charset=\"UTF-8\""),
                );
                response
            }
            Self::Invalid(text) => (StatusCode::BAD_REQUEST, format!("{text}\n")).into_response(),
            Self::Engine(e) => ApiError::from(e).into_response(),
        }
    }
}

type PageResult = Result<Response, PageError>;

/// The caller, when it authenticated.
fn caller(state: &AppState, parts: &Parts) -> Result<Identity, PageError> {
    let identity = identify(&state.node, parts);
    if identity.kind == IdentityKind::Failed {
        return Err(PageError::Unauthenticated);
    }
    Ok(identity)
}

/// The org a page shows: on the CSS the `org` parameter, else the caller's own; on the ESS
/// its one org. `None` for a sync admin who named none.
fn org_of(state: &AppState, identity: &Identity, query: &PageQuery) -> Option<String> {
    if state.node.role() == Role::Ess {
        return Some(state.node.org_for(None).to_string());
    }
    match query.org.as_deref().filter(|o| !o.is_empty()) {
        Some(org) => Some(org.to_string()),
        None if identity.org.is_empty() => None,
        None => Some(identity.org.clone()),
    }
}

fn nav(state: &AppState, org: &str, current: &str) -> Vec<NavLink> {
    let mut links = vec![NavLink {
        label: "Objects",
        href: href("/ui", &[("org", org)]),
        current: current == "objects",
    }];
    if state.node.role() == Role::Css {
        links.push(NavLink {
            label: "Nodes",
            href: href("/ui/nodes", &[("org", org)]),
            current: current == "nodes",
        });
    }
    links
}

async fn objects_page(State(state): State<AppState>, parts: Parts, Query(query): Query<PageQuery>) -> PageResult {
    let identity = caller(&state, &parts)?;
    let (request, page) = query.page_request()?;
    let Some(org) = org_of(&state, &identity, &query) else {
        return organizations_page(&state, &identity).await;
    };
    let objects = state.node.fleet_objects(&identity, &org, &request).await?;
    let place = Place {
        org: &org,
        search: &request.search,
        page,
    };
    let mut main = String::new();
    if let Some(link) = state.node.css_link() {
        main.push_str(&pages::css_link(&link.report()));
    }
    main.push_str(&pages::objects(&place, &objects, state.node.role() == Role::Css));
    let refresh = href(
        "/ui",
        &[("org", &org), ("q", &request.search), ("page", &page.to_string())],
    );
    respond(&query, &main, || {
        Shell {
            title: "Objects",
            subtitle: &subtitle(&state, &org),
            nav: &nav(&state, &org, "objects"),
            search: Some((&[("org", &org)], &request.search)),
            refresh: &refresh,
            main: &main,
        }
        .render()
    })
}

async fn object_page(State(state): State<AppState>, parts: Parts, Query(query): Query<PageQuery>) -> PageResult {
    let identity = caller(&state, &parts)?;
    let (request, page) = query.page_request()?;
    let Some(org) = org_of(&state, &identity, &query) else {
        return Err(PageError::Invalid("name the organization: org=".into()));
    };
    let (Some(object_type), Some(object_id)) = (query.object_type.as_deref(), query.id.as_deref()) else {
        return Err(PageError::Invalid("name the object: type= and id=".into()));
    };
    let key = ObjectKey::new(&org, object_type, object_id);
    let (summary, deliveries) = state.node.fleet_deliveries(&identity, &key, &request).await?;
    let place = Place {
        org: &org,
        search: &request.search,
        page,
    };
    let is_css = state.node.role() == Role::Css;
    let main = pages::object(&place, &summary, is_css.then_some(&deliveries));
    let refresh = href(
        "/ui/object",
        &[
            ("org", &org),
            ("type", object_type),
            ("id", object_id),
            ("q", &request.search),
            ("page", &page.to_string()),
        ],
    );
    let title = format!("{object_type}/{object_id}");
    let hidden = [("org", org.as_str()), ("type", object_type), ("id", object_id)];
    respond(&query, &main, || {
        Shell {
            title: &title,
            subtitle: &subtitle(&state, &org),
            nav: &nav(&state, &org, "object"),
            search: is_css.then_some((&hidden[..], &request.search)),
            refresh: &refresh,
            main: &main,
        }
        .render()
    })
}

async fn nodes_page(State(state): State<AppState>, parts: Parts, Query(query): Query<PageQuery>) -> PageResult {
    let identity = caller(&state, &parts)?;
    let (request, page) = query.page_request()?;
    let Some(org) = org_of(&state, &identity, &query) else {
        return Err(PageError::Invalid("name the organization: org=".into()));
    };
    let nodes = state.node.fleet_nodes(&identity, &org, &request).await?;
    let place = Place {
        org: &org,
        search: &request.search,
        page,
    };
    let main = pages::nodes(&place, &nodes);
    let refresh = href(
        "/ui/nodes",
        &[("org", &org), ("q", &request.search), ("page", &page.to_string())],
    );
    respond(&query, &main, || {
        Shell {
            title: "Nodes",
            subtitle: &subtitle(&state, &org),
            nav: &nav(&state, &org, "nodes"),
            search: Some((&[("org", &org)], &request.search)),
            refresh: &refresh,
            main: &main,
        }
        .render()
    })
}

async fn organizations_page(state: &AppState, identity: &Identity) -> PageResult {
    let orgs = match state.node.list_organizations(identity).await {
        Ok(orgs) => orgs.into_iter().map(|o| o.org_id).collect::<Vec<_>>(),
        Err(EngineError::NotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let main = pages::organizations(&orgs);
    Ok(html(
        Shell {
            title: "Organizations",
            subtitle: "Choose one",
            nav: &[],
            search: None,
            refresh: "",
            main: &main,
        }
        .render(),
    ))
}

fn subtitle(state: &AppState, org: &str) -> String {
    match state.node.role() {
        Role::Css => format!("Cloud sync service · organization {org}"),
        Role::Ess => format!("Edge sync service · organization {org}"),
    }
}

/// The whole page, or only its `<main>` content for a refresh.
fn respond(query: &PageQuery, main: &str, page: impl FnOnce() -> String) -> PageResult {
    Ok(if query.fragment() {
        html(main.to_string())
    } else {
        html(page())
    })
}

fn html(body: String) -> Response {
    with_headers(body, "text/html; charset=utf-8")
}

fn with_headers(body: impl IntoResponse, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn script() -> Response {
    with_headers(include_str!("assets/app.js"), "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    with_headers(include_str!("assets/app.css"), "text/css; charset=utf-8")
}
