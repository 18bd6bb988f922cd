//! The lab's configuration: cluster.yml (the `web` group or the light groups, agent timing,
//! the `ssh:` section) and each node's keepalived.conf, rendered by hakeep itself (for a
//! baseline lab, turned into the classic notify-script setup).

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::keepalived::BASELINE_SCRIPT;
use super::process::run_ok;
use super::{Lab, GROUP, IFACE, METRICS_PORT, METRICS_TEXTFILE, MOUNTPOINT, VIP, VRID};

/// The alert program of labs with [`alerts`](super::LabBuilder::alerts): root's, does nothing.
pub const ALERT_PROGRAM: &str = "/bin/true";

/// Agent timing in the test cluster.yml (seconds).
pub const HOLD_DOWN: u64 = 5;
pub const RESYNC_INTERVAL: u64 = 2;
pub const UMOUNT_GRACE: u64 = 2;
const SERVICE_TIMEOUT: u64 = 20;
/// cluster.yml `ssh.connect_timeout` of labs with SSH (seconds): an unreachable node
/// costs a status this long.
pub const SSH_CONNECT_TIMEOUT: u64 = 2;
/// Light groups ([`LabBuilder::light_groups`](super::LabBuilder::light_groups)): bind
/// sources and mountpoints in each node.
pub const LIGHT_DATA: &str = "/srv/hkt-data";
pub const LIGHT_MNT: &str = "/srv/hkt-mnt";
/// The most light groups a lab can have (VIPs .101-.228, vrids 101-228, ports 9001-9128).
pub const MAX_LIGHT_GROUPS: usize = 128;

/// Name of light group `i` (1-based): `g01`.
pub fn light_group(i: usize) -> String {
    format!("g{i:02}")
}

/// Floating IP of light group `i`.
pub fn light_vip(i: usize) -> String {
    format!("10.213.0.{}", 100 + i)
}

/// TCP port of light group `i`'s busybox httpd.
#[allow(dead_code, reason = "only benches/failover.rs uses it")]
pub fn light_port(i: usize) -> u16 {
    9000 + i as u16
}

impl Lab {
    /// The resource script of light group `i` (a symlink to light-service.sh).
    pub fn light_script(&self, i: usize) -> PathBuf {
        self.dir.join(format!("bin/svc-{}", light_group(i)))
    }

    /// The test cluster.yml (docs/design.md §4), the same file for every node.
    pub fn cluster_yml(&self) -> String {
        let mut nodes = String::new();
        let all = self
            .nodes
            .iter()
            .map(|n| (&n.name, &n.address))
            .chain(self.extra_nodes.iter().map(|n| (&n.name, &n.address)));
        for (name, address) in all {
            let _ = writeln!(
                nodes,
                "  {name}: {{ address: {address}, interface: {IFACE} }}"
            );
        }
        let ssh = match &self.ssh {
            None => String::new(),
            Some(f) => format!(
                "ssh:\n  user: root\n  port: 22\n  identity_file: {}\n  known_hosts: {}\n  \
                 connect_timeout: {SSH_CONNECT_TIMEOUT}\n  hakeep: {}\n",
                f.identity_file.display(),
                f.known_hosts.display(),
                self.hakeep.display()
            ),
        };
        let alerts = if self.alerts {
            format!("alerts:\n  - program: {ALERT_PROGRAM}\n    timeout: 5\n")
        } else {
            String::new()
        };
        let metrics = if self.metrics {
            format!("metrics:\n  listen: \"node:{METRICS_PORT}\"\n  textfile: {METRICS_TEXTFILE}\n")
        } else {
            String::new()
        };
        let checks = match &self.checks {
            None => String::new(),
            Some(c) => format!("    checks: {c}\n"),
        };
        let order = self.node_names().join(", ");
        let groups = if self.light_groups == 0 {
            format!(
                "  {GROUP}:\n    vrid: {VRID}\n    nodes: [{order}]\n    preempt: false\n    \
                 volumes: [none]\n    filesystems:\n      \
                 - {{ device: {dev}, mountpoint: {MOUNTPOINT}, fstype: ext4 }}\n    \
                 ips:\n      - {{ address: {VIP}/24 }}\n    \
                 services:\n      - {{ script: {script}, timeout: {SERVICE_TIMEOUT}, interval: 1 }}\n\
                 {checks}",
                dev = self.loop_dev.as_deref().unwrap_or("/dev/null"),
                script = self.service_script.display(),
            )
        } else {
            let mut g = String::new();
            for i in 1..=self.light_groups {
                let name = light_group(i);
                let _ = write!(
                    g,
                    "  {name}:\n    vrid: {vrid}\n    nodes: [{order}]\n    preempt: false\n    \
                     volumes: [none]\n    filesystems:\n      \
                     - {{ bind: {LIGHT_DATA}/{name}, mountpoint: {LIGHT_MNT}/{name} }}\n    \
                     ips:\n      - {{ address: {vip}/24 }}\n    \
                     services:\n      - {{ script: {script}, timeout: {SERVICE_TIMEOUT} }}\n\
                     {checks}",
                    vrid = 100 + i,
                    vip = light_vip(i),
                    script = self.light_script(i).display(),
                );
            }
            g
        };
        format!(
            "# tier-2 test cluster written by tests/harness (lab {id})\n\
             cluster: hkt\n\
             keepalived:\n  advert_int: {advert_int}\n  vrrp_version: {vrrp_version}\n  \
             unicast: true\n\
             agent:\n  hold_down: {hold_down}\n  resync_interval: {RESYNC_INTERVAL}\n  \
             umount_grace: {UMOUNT_GRACE}\n  service_timeout: {SERVICE_TIMEOUT}\n  \
             command_timeout: 20\n\
             {ssh}\
             {metrics}\
             {alerts}\
             nodes:\n{nodes}\
             groups:\n{groups}",
            id = self.id,
            advert_int = self.advert_int,
            vrrp_version = self.vrrp_version,
            hold_down = self.hold_down,
        )
    }

    /// The group names of the lab: `web`, or the light groups.
    pub fn group_names(&self) -> Vec<String> {
        if self.light_groups == 0 {
            vec![GROUP.to_string()]
        } else {
            (1..=self.light_groups).map(light_group).collect()
        }
    }

    /// A baseline node's keepalived.conf from hakeep's rendering: the same instance, no
    /// notify FIFO, scripts run as root, the classic notify lines.
    fn baseline_conf(&self, rendered: &str) -> Result<String> {
        let args = format!(
            "{} {MOUNTPOINT} {}",
            self.loop_dev
                .as_deref()
                .context("a baseline lab needs the loop device")?,
            self.service_script.display()
        );
        let mut out = String::new();
        let mut instances = 0;
        for line in rendered.lines() {
            let t = line.trim();
            if t.starts_with("vrrp_notify_fifo ") {
                continue;
            }
            if t == "script_user keepalived_script" {
                let _ = writeln!(out, "    script_user root");
                continue;
            }
            let _ = writeln!(out, "{line}");
            if t.starts_with("vrrp_instance ") {
                instances += 1;
                let _ = writeln!(
                    out,
                    "    # baseline (tests/harness): the classic notify scripts, no hakeep agent"
                );
                for event in ["master", "backup", "fault", "stop"] {
                    let _ = writeln!(
                        out,
                        "    notify_{event} \"{BASELINE_SCRIPT} {event} {args}\""
                    );
                }
            }
        }
        if instances != 1 || !out.contains("script_user root") {
            bail!("unexpected rendered keepalived.conf for the baseline:\n{rendered}");
        }
        Ok(out)
    }

    pub(super) fn write_config(&mut self) -> Result<()> {
        fs::write(&self.config, self.cluster_yml())?;
        let config = self.config.display().to_string();
        let hakeep = env!("CARGO_BIN_EXE_hakeep");
        run_ok(&[hakeep, "validate", "-c", &config]).context("hakeep validate")?;
        for node in &self.nodes {
            let conf = run_ok(&[
                hakeep,
                "render",
                "keepalived",
                "--node",
                &node.name,
                "-c",
                &config,
            ])
            .context("hakeep render keepalived")?;
            let conf = if self.baseline {
                self.baseline_conf(&conf)?
            } else {
                conf
            };
            fs::write(node.dir.join("keepalived.conf"), conf)?;
        }
        Ok(())
    }
}
