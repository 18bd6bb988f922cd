//! A node's namespaces: its holder process (tests/fixtures/node-holder.sh: the node's netns
//! and a private mount namespace), files read and written through `/proc/HOLDER/root`,
//! commands run inside it with `nsenter`, extra processes started in it, and its processes.

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::config::{light_group, LIGHT_DATA};
use super::keepalived::BASELINE_SCRIPT;
use super::process::{cmdline, ns_inode, pids_in_namespaces, run_with_timeout, text, wait_until};
use super::{fixtures, Lab, CMD_TIMEOUT, MOUNTPOINT};

impl Lab {
    pub(super) fn start_holder(&mut self, i: usize) -> Result<()> {
        let script = self.dir.join("bin/node-holder");
        let node = &mut self.nodes[i];
        let log = fs::File::create(node.dir.join("holder.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &node.netns])
            .args(["unshare", "--mount", "--propagation", "private", "--"])
            .arg("/bin/sh")
            .arg(&script)
            .args([&node.name, MOUNTPOINT])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting a node holder")?;
        // ip netns exec, unshare and sh all exec: the child's pid is the holder's.
        node.holder_pid = child.id();
        node.holder = Some(child);
        let (name, pid) = (node.name.clone(), node.holder_pid);
        let ready = format!("/proc/{pid}/root/run/hakeep-test-ready");
        wait_until(
            &format!("node {name}'s holder has its private mounts"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || Path::new(&ready).exists(),
        )
        .with_context(|| {
            format!(
                "holder log: {}",
                fs::read_to_string(self.nodes[i].dir.join("holder.log")).unwrap_or_default()
            )
        })?;
        let mnt = ns_inode(format!("/proc/{pid}/ns/mnt")).context("holder's mount ns")?;
        if Some(mnt) == ns_inode("/proc/self/ns/mnt") {
            bail!("node {name}'s holder shares the test's mount namespace");
        }
        self.holder_mnt_ns.insert(mnt);
        Ok(())
    }

    /// Per node, before keepalived and the agent start: the light groups' bind sources
    /// (with an index.html), the baseline's notify script in the node's /run.
    pub(super) fn prepare_node(&self, name: &str) -> Result<()> {
        for i in 1..=self.light_groups {
            let data = self.node_path(name, &format!("{LIGHT_DATA}/{}", light_group(i)));
            fs::create_dir_all(&data)?;
            fs::write(
                data.join("index.html"),
                format!("{} on {name}\n", light_group(i)),
            )?;
        }
        if self.baseline {
            let script = self.node_path(name, BASELINE_SCRIPT);
            let dir = script.parent().context("baseline script dir")?;
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
            fs::copy(fixtures().join("baseline-notify.sh"), &script)?;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    pub fn holder_pid(&self, name: &str) -> u32 {
        self.node(name).holder_pid
    }

    /// A path inside a node's mount namespace, reachable from the host.
    pub fn node_path(&self, name: &str, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        PathBuf::from(format!("/proc/{}/root", self.holder_pid(name))).join(rel)
    }

    pub fn read_node_file(&self, name: &str, path: &str) -> Option<String> {
        fs::read(self.node_path(name, path)).ok().map(|b| text(&b))
    }

    pub fn write_node_file(&self, name: &str, path: &str, content: &str) -> Result<()> {
        let p = self.node_path(name, path);
        fs::write(&p, content).with_context(|| format!("{name}: writing {path}"))
    }

    pub fn remove_node_file(&self, name: &str, path: &str) -> Result<()> {
        match fs::remove_file(self.node_path(name, path)) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("{name}: removing {path}"))
            }
            _ => Ok(()),
        }
    }

    pub fn node_file_exists(&self, name: &str, path: &str) -> bool {
        self.node_path(name, path).exists()
    }

    pub(super) fn nsenter(&self, name: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.holder_pid(name).to_string())
            .args(["--mount", "--net", "--"]);
        cmd
    }

    /// Runs argv inside a node (its mount and network namespaces).
    pub fn exec(&self, name: &str, argv: &[&str]) -> Result<Output> {
        run_with_timeout(self.nsenter(name).args(argv), CMD_TIMEOUT)
    }

    /// Starts a long-running process inside a node; the lab kills it at teardown.
    /// Returns its pid (nsenter execs, so the pid is the program's).
    pub fn spawn_in(&mut self, name: &str, label: &str, argv: &[&str]) -> Result<u32> {
        let child = self
            .nsenter(name)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("{name}: starting {label}"))?;
        let pid = child.id();
        self.extras.push((format!("{name}:{label}"), child));
        Ok(pid)
    }

    /// Whether a process started with [`Lab::spawn_in`] has exited (and reaps it).
    pub fn spawned_exited(&mut self, pid: u32) -> bool {
        match self.extras.iter_mut().find(|(_, c)| c.id() == pid) {
            Some((_, child)) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Processes in a node's network namespace: (pid, command line).
    pub fn processes(&self, name: &str) -> Vec<(u32, String)> {
        let Some(ino) = ns_inode(format!("/run/netns/{}", self.node(name).netns)) else {
            return Vec::new();
        };
        let set = HashSet::from([ino]);
        pids_in_namespaces(&set)
            .into_iter()
            .map(|p| (p, cmdline(p)))
            .collect()
    }

    pub(super) fn open_log(path: &Path, what: &str, since: Duration) -> Result<(fs::File, u64)> {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let offset = f.metadata()?.len();
        writeln!(f, "===== {what} started at lab time {since:.1?} =====")?;
        Ok((f, offset))
    }
}
