//! Several CSS instances on one PostgreSQL database: starting them sharing the database and
//! nothing else (object data is kept in the database), and asking an instance whether it
//! leads.

use super::metrics::{parse, value, Sample};
use super::postgres::PgCluster;
use super::sync::wait_for;
use super::{NodeOptions, Role, TestNode};
use std::path::Path;
use std::time::Duration;

/// `LeadershipTimeout` of the test instances, seconds: renewals every half second.
pub const LEADERSHIP_TIMEOUT: u64 = 3;
const DEADLINE: Duration = Duration::from_secs(30);

/// A CSS instance on the database of `url` with `extra` settings; `root` shares another
/// instance's persistence root (for data kept in files, `ObjectDataStorage files`).
pub fn instance_with(url: &str, root: Option<&Path>, extra: Vec<(String, String)>) -> TestNode {
    let mut options = NodeOptions::new(Role::Css);
    options.storage = "postgres";
    let timeout = LEADERSHIP_TIMEOUT.to_string();
    let mut env = vec![
        ("POSTGRES_URL", url.to_string()),
        ("LEADERSHIP_TIMEOUT", timeout),
        ("RESEND_INTERVAL", "1".to_string()),
        ("OBJECT_ACTIVATION_INTERVAL", "1".to_string()),
        ("STORAGE_MAINTENANCE_INTERVAL", "1".to_string()),
        ("METRICS_ACCESS", "open".to_string()),
    ];
    if let Some(root) = root {
        env.push(("PERSISTENCE_ROOT_PATH", root.display().to_string()));
    }
    options.env.extend(env.into_iter().map(|(k, v)| (k.to_string(), v)));
    options.env.extend(extra);
    TestNode::start(options)
}

/// Two instances sharing a new database of `cluster`, each with its own persistence root;
/// the first one started leads.
pub async fn two_instances(cluster: &PgCluster) -> (TestNode, TestNode) {
    two_instances_with(cluster, Vec::new()).await
}

/// [`two_instances`] with extra settings for both.
pub async fn two_instances_with(cluster: &PgCluster, extra: Vec<(String, String)>) -> (TestNode, TestNode) {
    let url = cluster.create_database().await;
    let first = instance_with(&url, None, extra.clone());
    wait_for("the first instance to lead", &[&first], DEADLINE, async || {
        leads(&first).await == Some(true)
    })
    .await;
    let second = instance_with(&url, None, extra);
    (first, second)
}

/// The instance's metrics; `None` while it does not answer.
pub async fn scrape(node: &TestNode) -> Option<Vec<Sample>> {
    let response = node.api().get("/metrics").await;
    (response.status == 200).then(|| parse(&response.text()))
}

/// The instance's `edge_sync_leader` metric; `None` while it does not answer.
pub async fn leads(node: &TestNode) -> Option<bool> {
    let samples = scrape(node).await?;
    Some(value(&samples, "edge_sync_leader", &[])? == 1.0)
}
