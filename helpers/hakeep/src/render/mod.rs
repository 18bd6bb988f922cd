//! Derives each node's keepalived.conf, and the cluster's corosync.conf, from the model.

mod corosync;
mod view;

use minijinja::Environment;

use crate::config::Cluster;
use crate::runtime::Paths;
pub use view::KeepalivedView;

const KEEPALIVED_TEMPLATE: &str = include_str!("templates/keepalived.conf.j2");
const COROSYNC_TEMPLATE: &str = include_str!("templates/corosync.conf.j2");

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("node {node:?} is not in cluster {cluster:?} (nodes: {known})")]
    UnknownNode {
        node: String,
        cluster: String,
        known: String,
    },
    #[error("cluster {0:?} has no `quorum:` section: it runs without corosync")]
    NoQuorum(String),
    #[error("rendering: {0}")]
    Template(#[from] minijinja::Error),
}

/// corosync.conf of the cluster (the same on every node).
pub fn corosync_conf(cluster: &Cluster) -> Result<String, RenderError> {
    let view = corosync::CorosyncView::new(cluster)
        .ok_or_else(|| RenderError::NoQuorum(cluster.name.clone()))?;
    render(COROSYNC_TEMPLATE, &view)
}

fn render(template: &str, view: &impl serde::Serialize) -> Result<String, RenderError> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("file", template)?;
    Ok(env
        .get_template("file")?
        .render(minijinja::value::Serde(view))?)
}

/// keepalived.conf for `node`: identical input gives byte-identical output.
pub fn keepalived_conf(cluster: &Cluster, node: &str) -> Result<String, RenderError> {
    keepalived_conf_for(cluster, node, &Paths::default())
}

/// [`keepalived_conf`] for a node whose runtime files are where `paths` has them (the
/// notify FIFO, the track files): what `hakeep doctor` compares with when tests relocate
/// them.
pub fn keepalived_conf_for(
    cluster: &Cluster,
    node: &str,
    paths: &Paths,
) -> Result<String, RenderError> {
    let view =
        KeepalivedView::new(cluster, node, paths).ok_or_else(|| RenderError::UnknownNode {
            node: node.to_string(),
            cluster: cluster.name.clone(),
            known: cluster
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    render(KEEPALIVED_TEMPLATE, &view)
}
