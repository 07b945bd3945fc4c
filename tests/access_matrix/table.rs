//! The expected matrix: identities (columns), route groups (rows) and what each cell must
//! show, transcribed from security.md §4.1/§4.2 with the flaw fixes applied (POST
//! destinations and activate need Write, webhooks need the own org).

/// The organization the fixtures live in (the ESS is configured with it).
pub const OWN: &str = "org1";
/// Another organization.
pub const OTHER: &str = "org2";
/// Sync admin (`ops` is listed in the harness's `dummy-auth.json`).
pub const SYNC_ADMIN: &str = "ops@x";
/// Org admin of [`OWN`]; creates the fixtures and grants the ACLs.
pub const OWNER: &str = "alice@org1";

/// The matrix columns: (label, app key). `None` sends no credentials.
pub const WHO: [(&str, Option<&str>); 13] = [
    ("sync admin", Some(SYNC_ADMIN)),
    ("org admin own (exchange admin)", Some("org1/boss")),
    ("org admin own", Some(OWNER)),
    ("org admin other", Some("alice@org2")),
    ("object admin own", Some("org1/worker")),
    ("object admin other", Some("org2/worker")),
    ("user own", Some("bob@org1")),
    ("user other", Some("bob@org2")),
    ("node user own", Some("n1%org1")),
    ("node user other", Some("n1%org2")),
    ("service own", Some("org1$sorg$1.0.0$svc")),
    ("edge node", Some("org1/edge/n1")),
    ("no credentials", None),
];
/// Columns whose CSS cells change once the ACLs are granted (order of [`Row::css_acl`]).
const ACL_COLUMNS: [usize; 2] = [6, 8];

/// One representative request per route group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Health,
    Resend,
    DestList,
    OrgList,
    OrgPut,
    Security,
    GetMeta,
    GetStatus,
    GetData,
    AllObjects,
    ListTypes,
    Filters,
    PutObject,
    PutData,
    PutDest,
    PostDest,
    Delete,
    Activate,
    Consumed,
    Webhook,
    Shutdown,
    OrgDelete,
}

/// What a cell must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Passes the access check; the route then answers this status.
    Allowed(u16),
    /// 403.
    Denied,
    /// Reads: private and public object alike (lists show both).
    Full,
    /// Reads: the public object only; the private one is 403.
    PublicOnly,
    /// Org-wide listings: objects of ACL-readable types (`model`) plus public ones.
    AclTypes,
    /// Organization listing: exactly these orgs.
    Orgs(&'static [&'static str]),
    /// The route does not exist (framework 404).
    NotFound404,
    /// Passes the access check, then 400.
    BadRequest400,
    /// Not exercised (the allowed shutdown; CSS-only routes on the ESS).
    Skip,
}

pub use Expect::*;
pub use Group::*;

const OK: Expect = Allowed(204);
const R200: Expect = Allowed(200);
/// Passes; no ESS registered, so the list is empty (404).
const NONE: Expect = Allowed(404);
const NO: Expect = Denied;
const BAD: Expect = BadRequest400;
const FULL: Expect = Full;
const PUB: Expect = PublicOnly;
const ACLT: Expect = AclTypes;
const N404: Expect = NotFound404;
const SKIP: Expect = Skip;
const ALL_ORGS: Expect = Orgs(&["org1", "org2"]);
const ORG1: Expect = Orgs(&["org1"]);
const ORG2: Expect = Orgs(&["org2"]);

/// One route group: the outcome per column of [`WHO`].
pub struct Row {
    pub group: Group,
    /// CSS without any ACL.
    pub css: [Expect; 13],
    /// CSS after the grants, for `bob@org1` (objects `aclWriter` on `model`, org-wide
    /// destinations) and `n1%org1` (objects `aclReader` on `model`); other columns as `css`.
    pub css_acl: [Expect; 2],
    /// ESS (no ACLs; other orgs get 403, not public-only).
    pub ess: [Expect; 13],
}

// Columns: sync, boss@own, alice@own, alice@other, worker@own, worker@other, bob@own,
// bob@other, n1@own, n1@other, service@own, edge node, no credentials.
#[rustfmt::skip]
pub const ROWS: &[Row] = &[
    Row { group: Health,
          css: [R200, R200, R200, R200, R200, R200, R200, R200, R200, R200, R200, NO, NO], css_acl: [R200, R200],
          ess: [R200, R200, R200, R200, R200, R200, R200, R200, R200, R200, R200, NO, NO] },
    Row { group: Resend,
          css: [BAD, BAD, BAD, BAD, NO, NO, BAD, BAD, NO, NO, NO, NO, NO], css_acl: [BAD, NO],
          ess: [OK, OK, OK, OK, NO, NO, OK, OK, NO, NO, NO, NO, NO] },
    Row { group: DestList,
          css: [NONE, NONE, NONE, NO, NONE, NO, NONE, NO, NONE, NO, NONE, NO, NO], css_acl: [NONE, NONE],
          ess: [BAD, BAD, BAD, NO, BAD, NO, BAD, NO, BAD, NO, BAD, NO, NO] },
    Row { group: OrgList,
          css: [ALL_ORGS, ORG1, ORG1, ORG2, NO, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [NO, NO],
          ess: [BAD, BAD, BAD, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO] },
    Row { group: OrgPut,
          css: [OK, OK, OK, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [NO, NO],
          ess: [BAD, BAD, BAD, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO] },
    Row { group: Security,
          css: [OK, OK, OK, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [NO, NO],
          ess: [N404, N404, N404, N404, N404, N404, N404, N404, N404, N404, N404, N404, N404] },
    Row { group: GetMeta,
          css: [FULL, FULL, FULL, PUB, FULL, PUB, PUB, PUB, PUB, PUB, NO, NO, NO], css_acl: [FULL, FULL],
          ess: [FULL, FULL, FULL, NO, FULL, NO, FULL, NO, FULL, NO, FULL, NO, NO] },
    Row { group: GetStatus,
          css: [FULL, FULL, FULL, PUB, FULL, PUB, PUB, PUB, PUB, PUB, NO, NO, NO], css_acl: [FULL, FULL],
          ess: [FULL, FULL, FULL, NO, FULL, NO, FULL, NO, FULL, NO, FULL, NO, NO] },
    Row { group: GetData,
          css: [FULL, FULL, FULL, PUB, FULL, PUB, PUB, PUB, PUB, PUB, NO, NO, NO], css_acl: [FULL, FULL],
          ess: [FULL, FULL, FULL, NO, FULL, NO, FULL, NO, FULL, NO, FULL, NO, NO] },
    Row { group: AllObjects,
          css: [FULL, FULL, FULL, PUB, FULL, PUB, PUB, PUB, PUB, PUB, NO, NO, NO], css_acl: [FULL, FULL],
          ess: [FULL, FULL, FULL, NO, FULL, NO, FULL, NO, FULL, NO, FULL, NO, NO] },
    Row { group: ListTypes,
          css: [FULL, FULL, FULL, PUB, FULL, PUB, PUB, PUB, PUB, PUB, NO, NO, NO], css_acl: [ACLT, ACLT],
          ess: [SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP] },
    Row { group: Filters,
          css: [FULL, FULL, FULL, PUB, FULL, PUB, PUB, PUB, PUB, PUB, NO, NO, NO], css_acl: [ACLT, ACLT],
          ess: [SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP, SKIP] },
    Row { group: PutObject,
          css: [OK, OK, OK, NO, OK, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [OK, NO],
          ess: [OK, OK, OK, NO, OK, NO, OK, NO, OK, NO, OK, NO, NO] },
    Row { group: PutData,
          css: [OK, OK, OK, NO, OK, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [OK, NO],
          ess: [OK, OK, OK, NO, OK, NO, OK, NO, OK, NO, OK, NO, NO] },
    Row { group: PutDest,
          css: [OK, OK, OK, NO, OK, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [OK, NO],
          ess: [BAD, BAD, BAD, NO, BAD, NO, BAD, NO, BAD, NO, BAD, NO, NO] },
    Row { group: PostDest,
          css: [OK, OK, OK, NO, OK, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [OK, NO],
          ess: [BAD, BAD, BAD, NO, BAD, NO, BAD, NO, BAD, NO, BAD, NO, NO] },
    Row { group: Delete,
          css: [OK, OK, OK, NO, OK, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [OK, NO],
          ess: [OK, OK, OK, NO, OK, NO, OK, NO, OK, NO, OK, NO, NO] },
    Row { group: Activate,
          css: [OK, OK, OK, NO, OK, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [OK, NO],
          ess: [OK, OK, OK, NO, OK, NO, OK, NO, OK, NO, OK, NO, NO] },
    Row { group: Consumed,
          css: [BAD, BAD, BAD, NO, BAD, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [BAD, BAD],
          ess: [BAD, BAD, BAD, NO, BAD, NO, BAD, NO, BAD, NO, BAD, NO, NO] },
    Row { group: Webhook,
          css: [OK, OK, OK, NO, OK, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [OK, NO],
          ess: [OK, OK, OK, NO, OK, NO, OK, NO, OK, NO, NO, NO, NO] },
    // Last but one: a wrongly allowed shutdown would only spoil the cells after it.
    Row { group: Shutdown,
          css: [SKIP, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [NO, NO],
          ess: [SKIP, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO] },
    // Last: the allowed cells wipe the fixture org (it is re-created before each cell).
    Row { group: OrgDelete,
          css: [OK, OK, OK, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO], css_acl: [NO, NO],
          ess: [BAD, BAD, BAD, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO] },
];

/// Which matrix a pass checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    CssNoAcl,
    CssAcl,
    Ess,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::CssNoAcl => "CSS, no ACLs",
            Phase::CssAcl => "CSS, ACLs granted",
            Phase::Ess => "ESS",
        }
    }

    pub fn expect(self, row: &Row, column: usize) -> Expect {
        match self {
            Phase::Ess => row.ess[column],
            Phase::CssAcl => match ACL_COLUMNS.iter().position(|&c| c == column) {
                Some(i) => row.css_acl[i],
                None => row.css[column],
            },
            Phase::CssNoAcl => row.css[column],
        }
    }
}

/// How a cell with `expect` looks for `group`, in the form `Matrix::observe` reports.
pub fn expected_text(group: Group, expect: Expect) -> String {
    let reads = matches!(group, GetMeta | GetStatus | GetData);
    match (group, expect) {
        (_, Full) if reads => "public 200, private 200".into(),
        (_, PublicOnly) if reads => "public 200, private 403".into(),
        (_, Denied) if reads => "public 403, private 403".into(),
        (AllObjects, Full) => "200 [priv, pub]".into(),
        (AllObjects | Filters, PublicOnly) => "200 [pub]".into(),
        (Filters, Full) => "200 [priv, pub, sec]".into(),
        (Filters, AclTypes) => "200 [priv, pub]".into(),
        (ListTypes, Full) => "200 [model, secret]".into(),
        (ListTypes, PublicOnly | AclTypes) => "200 [model]".into(),
        (OrgList, Orgs(orgs)) => format!("200 [{}]", orgs.join(", ")),
        (_, Allowed(status)) => status.to_string(),
        (_, Denied) => "403".into(),
        (_, BadRequest400) => "400".into(),
        (_, NotFound404) => "404".into(),
        (group, expect) => panic!("table error: {expect:?} makes no sense for {group:?}"),
    }
}
