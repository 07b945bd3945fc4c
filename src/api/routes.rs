//! Every route the HTTP server serves, as one table: method, path template (OpenAPI syntax,
//! as the role serves it) and the roles that serve it. `openapi.yaml` must describe exactly
//! these (tests/openapi.rs compares them), and the dispatchers must recognise exactly these:
//! the `checks` below feed each template, and many near misses, through the same pure routing
//! functions the dispatchers call before doing any work, so the table cannot drift from the
//! code unnoticed.
//!
//! The router mounts a handful of prefixes ([`MOUNTS`]) and each dispatcher splits the rest
//! of the path itself, as the original does (rest-api.md §1.2). The nodes' `/spi/v1` routes
//! are the HTTP transport's, above this layer: their routing function is handed in
//! ([`SpiRecogniser`]).

use super::error::{ApiError, ApiResult};
use crate::model::Role;
use axum::http::Method;

/// One served route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// The `operationId` in `openapi.yaml`.
    pub operation_id: &'static str,
    pub method: &'static str,
    /// The path as the roles below serve it, parameters in braces.
    pub path: &'static str,
    /// The roles whose router dispatches this route to its operation. Some operations only
    /// refuse on one role (e.g. organizations on the ESS); the document says which.
    pub roles: &'static [Role],
}

const CSS: &[Role] = &[Role::Css];
const ESS: &[Role] = &[Role::Ess];
const BOTH: &[Role] = &[Role::Css, Role::Ess];

const fn r(operation_id: &'static str, method: &'static str, path: &'static str, roles: &'static [Role]) -> RouteSpec {
    RouteSpec {
        operation_id,
        method,
        path,
        roles,
    }
}

/// The routes. Object routes appear twice: the CSS names the organization in the path, the
/// ESS serves one organization and leaves it out.
pub const ROUTES: &[RouteSpec] = &[
    r("queryOrgObjects", "GET", "/api/v1/objects/{orgID}", CSS),
    r("listObjects", "GET", "/api/v1/objects/{orgID}/{objectType}", CSS),
    r("listObjects", "GET", "/api/v1/objects/{objectType}", ESS),
    r("updateWebhook", "PUT", "/api/v1/objects/{orgID}/{objectType}", CSS),
    r("updateWebhook", "PUT", "/api/v1/objects/{objectType}", ESS),
    r(
        "getObject",
        "GET",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}",
        CSS,
    ),
    r("getObject", "GET", "/api/v1/objects/{objectType}/{objectID}", ESS),
    r(
        "putObject",
        "PUT",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}",
        CSS,
    ),
    r("putObject", "PUT", "/api/v1/objects/{objectType}/{objectID}", ESS),
    r(
        "deleteObject",
        "DELETE",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}",
        CSS,
    ),
    r("deleteObject", "DELETE", "/api/v1/objects/{objectType}/{objectID}", ESS),
    r(
        "getObjectData",
        "GET",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/data",
        CSS,
    ),
    r(
        "getObjectData",
        "GET",
        "/api/v1/objects/{objectType}/{objectID}/data",
        ESS,
    ),
    r(
        "putObjectData",
        "PUT",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/data",
        CSS,
    ),
    r(
        "putObjectData",
        "PUT",
        "/api/v1/objects/{objectType}/{objectID}/data",
        ESS,
    ),
    r(
        "getObjectStatus",
        "GET",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/status",
        CSS,
    ),
    r(
        "getObjectStatus",
        "GET",
        "/api/v1/objects/{objectType}/{objectID}/status",
        ESS,
    ),
    r(
        "getObjectDestinations",
        "GET",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/destinations",
        CSS,
    ),
    r(
        "getObjectDestinations",
        "GET",
        "/api/v1/objects/{objectType}/{objectID}/destinations",
        ESS,
    ),
    r(
        "putObjectDestinations",
        "PUT",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/destinations",
        CSS,
    ),
    r(
        "putObjectDestinations",
        "PUT",
        "/api/v1/objects/{objectType}/{objectID}/destinations",
        ESS,
    ),
    r(
        "postObjectDestinations",
        "POST",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/destinations",
        CSS,
    ),
    r(
        "postObjectDestinations",
        "POST",
        "/api/v1/objects/{objectType}/{objectID}/destinations",
        ESS,
    ),
    r(
        "markObjectConsumed",
        "PUT",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/consumed",
        CSS,
    ),
    r(
        "markObjectConsumed",
        "PUT",
        "/api/v1/objects/{objectType}/{objectID}/consumed",
        ESS,
    ),
    r(
        "markObjectReceived",
        "PUT",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/received",
        CSS,
    ),
    r(
        "markObjectReceived",
        "PUT",
        "/api/v1/objects/{objectType}/{objectID}/received",
        ESS,
    ),
    r(
        "markObjectDeleted",
        "PUT",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/deleted",
        CSS,
    ),
    r(
        "markObjectDeleted",
        "PUT",
        "/api/v1/objects/{objectType}/{objectID}/deleted",
        ESS,
    ),
    r(
        "activateObject",
        "PUT",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/activate",
        CSS,
    ),
    r(
        "activateObject",
        "PUT",
        "/api/v1/objects/{objectType}/{objectID}/activate",
        ESS,
    ),
    r(
        "markPolicyReceived",
        "PUT",
        "/api/v1/objects/{orgID}/{objectType}/{objectID}/policyreceived",
        CSS,
    ),
    r(
        "markPolicyReceived",
        "PUT",
        "/api/v1/objects/{objectType}/{objectID}/policyreceived",
        ESS,
    ),
    r("listDestinations", "GET", "/api/v1/destinations/{orgID}", CSS),
    r(
        "listDestinationObjects",
        "GET",
        "/api/v1/destinations/{orgID}/{destinationType}/{destinationID}/objects",
        CSS,
    ),
    r("essDestinations", "GET", "/api/v1/destinations", ESS),
    r("listOrganizations", "GET", "/api/v1/organizations", BOTH),
    r("putOrganization", "PUT", "/api/v1/organizations/{orgID}", BOTH),
    r("deleteOrganization", "DELETE", "/api/v1/organizations/{orgID}", BOTH),
    r("getAcl", "GET", "/api/v1/security/{aclType}/{orgID}", CSS),
    r("getAclByKey", "GET", "/api/v1/security/{aclType}/{orgID}/{key}", CSS),
    r("updateOrgAcl", "PUT", "/api/v1/security/{aclType}/{orgID}", CSS),
    r("updateAcl", "PUT", "/api/v1/security/{aclType}/{orgID}/{key}", CSS),
    r(
        "deleteAclEntry",
        "DELETE",
        "/api/v1/security/{aclType}/{orgID}/{key}/{aclUserType}/{username}",
        CSS,
    ),
    r("getHealth", "GET", "/api/v1/health", BOTH),
    r("resend", "POST", "/api/v1/resend", BOTH),
    r("resendPut", "PUT", "/api/v1/resend", BOTH),
    r("shutdown", "POST", "/api/v1/shutdown", BOTH),
    r("getOpenApi", "GET", "/swagger", BOTH),
    r("getMetrics", "GET", "/metrics", BOTH),
    r("listUploads", "GET", "/api/v1/uploads", ESS),
    r("triggerUpload", "POST", "/api/v1/uploads/{sourceName}", ESS),
    r(
        "spiRegister",
        "PUT",
        "/spi/v1/register/{orgID}/{destinationType}/{destinationID}",
        CSS,
    ),
    r(
        "spiRegisterNew",
        "PUT",
        "/spi/v1/register-new/{orgID}/{destinationType}/{destinationID}",
        CSS,
    ),
    r(
        "spiPing",
        "PUT",
        "/spi/v1/ping/{orgID}/{destinationType}/{destinationID}",
        CSS,
    ),
    r(
        "spiUnregister",
        "PUT",
        "/spi/v1/unregister/{orgID}/{destinationType}/{destinationID}",
        CSS,
    ),
    r("spiPoll", "GET", "/spi/v1/objects/", CSS),
    r("spiResend", "PUT", "/spi/v1/objects/{orgID}/resend", CSS),
    r(
        "spiGetData",
        "GET",
        "/spi/v1/objects/{orgID}/{objectType}/{objectID}/{instanceID}/{dataID}/data",
        CSS,
    ),
    r(
        "spiPutData",
        "PUT",
        "/spi/v1/objects/{orgID}/{objectType}/{objectID}/{instanceID}/{dataID}/data",
        CSS,
    ),
    r(
        "spiAction",
        "PUT",
        "/spi/v1/objects/{orgID}/{objectType}/{objectID}/{instanceID}/{dataID}/{action}",
        CSS,
    ),
    r(
        "spiGetDataShort",
        "GET",
        "/spi/v1/objects/{orgID}/{objectType}/{objectID}/{instanceID}/data",
        CSS,
    ),
    r(
        "spiPutDataShort",
        "PUT",
        "/spi/v1/objects/{orgID}/{objectType}/{objectID}/{instanceID}/data",
        CSS,
    ),
    r(
        "spiActionShort",
        "PUT",
        "/spi/v1/objects/{orgID}/{objectType}/{objectID}/{instanceID}/{action}",
        CSS,
    ),
];

/// Which dispatcher a mounted path goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mount {
    Objects,
    Destinations,
    Organizations,
    Security,
    Spi,
    Health,
    Resend,
    Shutdown,
    Docs,
    Metrics,
    Uploads,
}

/// What the router mounts: a path and, for prefixes, everything below it.
pub(crate) const MOUNTS: &[(&str, Mount, bool)] = &[
    ("/api/v1/objects", Mount::Objects, true),
    ("/api/v1/destinations", Mount::Destinations, true),
    ("/api/v1/organizations", Mount::Organizations, true),
    ("/api/v1/security", Mount::Security, true),
    ("/spi/v1", Mount::Spi, true),
    ("/api/v1/health", Mount::Health, false),
    ("/api/v1/resend", Mount::Resend, false),
    ("/api/v1/shutdown", Mount::Shutdown, false),
    ("/swagger", Mount::Docs, false),
    ("/metrics", Mount::Metrics, false),
    ("/api/v1/uploads", Mount::Uploads, true),
];

/// The routing function of the nodes' `/spi/v1` routes, which the HTTP transport serves
/// (`transport::http::css::recognise`): the `operationId` that serves `method path` on a
/// node that serves those routes or not, or the routing error it would get.
pub type SpiRecogniser = fn(bool, &Method, &str) -> ApiResult<&'static str>;

/// The `operationId` that would serve `method path` on a node of `role` (one that serves the
/// node-to-node routes when it is a CSS, recognised by `spi`), or the routing error it would
/// get; nothing is served. Mirrors the router: the mount, then the dispatcher's own routing
/// function.
pub fn recognise(role: Role, spi: SpiRecogniser, method: &Method, path: &str) -> ApiResult<&'static str> {
    recognise_on(role, role == Role::Css, spi, method, path)
}

/// The `operationId` that serves `method path` on a node of `role` that serves the
/// node-to-node routes (recognised by `spi`) or not (`serves_spi`), or `None` for a request no
/// route takes: the route label of the request's metrics and log span.
pub fn operation_of(
    role: Role,
    serves_spi: bool,
    spi: SpiRecogniser,
    method: &Method,
    path: &str,
) -> Option<&'static str> {
    recognise_on(role, serves_spi, spi, method, path).ok()
}

fn recognise_on(
    role: Role,
    serves_spi: bool,
    spi: SpiRecogniser,
    method: &Method,
    path: &str,
) -> ApiResult<&'static str> {
    let mount = MOUNTS.iter().find(|(mounted, _, prefix)| {
        path == *mounted || (*prefix && path.strip_prefix(mounted).is_some_and(|rest| rest.starts_with('/')))
    });
    let Some(&(_, mount, _)) = mount else {
        return Err(ApiError::NoRoute);
    };
    match mount {
        Mount::Objects => super::objects::recognise(role, method, path),
        Mount::Security => super::security::recognise(role, method, path),
        Mount::Spi => spi(serves_spi, method, path),
        Mount::Docs => super::docs::recognise(method),
        Mount::Metrics => super::metrics::recognise(method),
        Mount::Uploads => super::uploads::recognise(role, method, path),
        Mount::Destinations | Mount::Organizations | Mount::Health | Mount::Resend | Mount::Shutdown => {
            super::admin::recognise(mount, role, method, path)
        }
    }
}

/// The table's checks against every dispatcher. The SPI's routing function is above this
/// layer, so the HTTP transport's tests run them with it (`transport::http::css`).
#[cfg(test)]
pub(crate) mod checks {
    use super::*;
    use std::collections::BTreeSet;

    const METHODS: [Method; 7] = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
    ];

    /// Any of [`METHODS`], for the property tests of the routers.
    pub(crate) fn any_method() -> impl proptest::strategy::Strategy<Value = Method> {
        proptest::sample::select(METHODS.to_vec())
    }

    /// A value for each path parameter the table uses.
    fn sample(name: &str) -> &'static str {
        match name {
            "orgID" => "myorg",
            "objectType" => "model",
            "objectID" => "m1",
            "destinationType" => "edge",
            "destinationID" => "node1",
            "aclType" => "objects",
            "key" => "model",
            "aclUserType" => "user",
            "username" => "bob",
            "instanceID" => "1",
            "dataID" => "2",
            "action" => "updated",
            "sourceName" => "logs",
            other => panic!("no sample value for the path parameter {other}"),
        }
    }

    fn sample_path(template: &str) -> String {
        template
            .split('/')
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => sample(name),
                    None => segment,
                },
            )
            .collect::<Vec<_>>()
            .join("/")
    }

    fn method(name: &str) -> Method {
        Method::from_bytes(name.as_bytes()).expect("a method name")
    }

    pub(crate) fn every_table_route_is_recognised_on_its_roles_only(spi: SpiRecogniser) {
        for spec in ROUTES {
            let path = sample_path(spec.path);
            for role in [Role::Css, Role::Ess] {
                let got = recognise(role, spi, &method(spec.method), &path);
                if spec.roles.contains(&role) {
                    assert_eq!(got.ok(), Some(spec.operation_id), "{role:?} {} {path}", spec.method);
                } else {
                    assert_ne!(got.ok(), Some(spec.operation_id), "{role:?} {} {path}", spec.method);
                }
            }
        }
    }

    #[test]
    fn the_table_has_no_duplicates_and_one_method_per_operation() {
        let mut seen = BTreeSet::new();
        for spec in ROUTES {
            for role in spec.roles {
                assert!(
                    seen.insert((spec.method, spec.path, format!("{role:?}"))),
                    "{spec:?} twice"
                );
            }
            for other in ROUTES.iter().filter(|o| o.operation_id == spec.operation_id) {
                assert_eq!(other.method, spec.method, "{}", spec.operation_id);
            }
        }
    }

    /// Path words the dispatchers give meaning to, and sample values.
    fn vocabulary() -> Vec<&'static str> {
        let mut words: Vec<&'static str> = vec![
            "objects",
            "resend",
            "register",
            "register-new",
            "ping",
            "unregister",
            "destinations",
            "data",
            "user",
            "node",
            "x",
            "1",
            "",
        ];
        words.extend(super::super::objects::operation_names());
        words.extend(crate::model::sync::Action::ALL.iter().map(|a| a.as_str()));
        for spec in ROUTES {
            for segment in spec.path.split('/') {
                match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => words.push(sample(name)),
                    None => words.push(segment),
                }
            }
        }
        words.sort_unstable();
        words.dedup();
        words
    }

    /// Every table path, each mount, and their near misses: one segment replaced by any
    /// vocabulary word, one segment added, the last one dropped.
    fn universe() -> BTreeSet<String> {
        let words = vocabulary();
        let mut paths = BTreeSet::new();
        let mut bases: Vec<Vec<String>> = ROUTES
            .iter()
            .map(|s| sample_path(s.path).split('/').map(str::to_string).collect())
            .collect();
        bases.extend(MOUNTS.iter().map(|(p, ..)| p.split('/').map(str::to_string).collect()));
        for base in &bases {
            paths.insert(base.join("/"));
            for index in 1..base.len() {
                for word in &words {
                    let mut changed = base.clone();
                    changed[index] = word.to_string();
                    paths.insert(changed.join("/"));
                }
            }
            for word in &words {
                paths.insert(format!("{}/{word}", base.join("/")));
            }
            if base.len() > 2 {
                paths.insert(base[..base.len() - 1].join("/"));
            }
        }
        paths
    }

    pub(crate) fn everything_the_dispatchers_recognise_is_in_the_table(spi: SpiRecogniser) {
        let table: BTreeSet<(&str, &str, String)> = ROUTES
            .iter()
            .flat_map(|s| {
                s.roles
                    .iter()
                    .map(move |role| (s.operation_id, s.method, format!("{role:?}")))
            })
            .collect();
        let paths = universe();
        assert!(paths.len() > 10_000, "the universe is too small: {}", paths.len());
        let mut recognised = 0;
        for path in &paths {
            for role in [Role::Css, Role::Ess] {
                for method in &METHODS {
                    if let Ok(id) = recognise(role, spi, method, path) {
                        recognised += 1;
                        assert!(
                            table.contains(&(id, method.as_str(), format!("{role:?}"))),
                            "{role:?} {method} {path} is served as {id}, which the table does not list"
                        );
                    }
                }
            }
        }
        assert!(recognised > ROUTES.len());
    }

    pub(crate) fn clearly_unknown_paths_are_not_recognised(spi: SpiRecogniser) {
        let get = Method::GET;
        for (role, path) in [
            (Role::Css, "/api/v1/nothing"),
            (Role::Css, "/api/v1/objectsX"),
            (Role::Css, "/api/v1/objects/myorg/model/m1/nosuchop"),
            (Role::Css, "/api/v1/objects/myorg/model/m1/data/more"),
            (Role::Css, "/api/v1/destinations/myorg/edge/node1/other"),
            (Role::Css, "/spi/v1/objects/myorg/model/m1/x/1/data"),
            (Role::Css, "/spi/v1/nothing"),
            (Role::Ess, "/api/v1/objects/"),
            (Role::Ess, "/api/v1/security/objects/myorg"),
            (Role::Ess, "/api/v1/destinations/myorg"),
            (Role::Ess, "/api/v1/destinations/"),
            (Role::Ess, "/spi/v1/objects/"),
            (Role::Css, "/swagger/ui"),
        ] {
            assert!(recognise(role, spi, &get, path).is_err(), "{role:?} {path}");
        }
        assert!(matches!(
            recognise(Role::Css, spi, &Method::PATCH, "/api/v1/health"),
            Err(ApiError::MethodNotAllowed)
        ));
        assert!(matches!(
            recognise(Role::Ess, spi, &get, "/api/v1/security/objects/myorg"),
            Err(ApiError::NoRoute)
        ));
    }
}
