//! validate + render time for a large generated cluster: 16 nodes, 200 groups.
//! Prints a Markdown table row per measure (median and max of the runs).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

const NODES: usize = 16;
const GROUPS: usize = 200;
const RUNS: usize = 30;

fn generated_cluster() -> String {
    let mut y =
        String::from("cluster: big\nkeepalived: { advert_int: 1, vrrp_version: 3 }\nnodes:\n");
    for n in 0..NODES {
        let _ = writeln!(
            y,
            "  n{n}: {{ address: 10.40.0.{}, interface: eth1 }}",
            n + 10
        );
    }
    y.push_str("groups:\n");
    for g in 0..GROUPS {
        let first = g % NODES;
        let second = (g + 1) % NODES;
        let third = (g + 2) % NODES;
        let _ = write!(
            y,
            "  g{g}:\n    vrid: {}\n    nodes: [n{first}, n{second}, n{third}]\n    volumes: [none]\n    \
             filesystems:\n      - {{ device: /dev/vg/g{g}, mountpoint: /srv/g{g}, fstype: xfs, options: noatime }}\n    \
             ips:\n      - {{ address: 10.{}.{}.100/24 }}\n    services: [svc{g}.service]\n    \
             checks:\n      - {{ tcp: \"10.{}.{}.100:80\" }}\n",
            g + 1,
            41 + g / 250,
            g % 250,
            41 + g / 250,
            g % 250,
        );
    }
    y
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn main() {
    let text = generated_cluster();
    let mut validate = Vec::new();
    let mut render_all = Vec::new();
    let mut total = Vec::new();
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let cluster =
            hakeep::config::from_str("cluster.yml", &text).expect("generated config is valid");
        let t1 = Instant::now();
        for n in 0..NODES {
            let conf =
                hakeep::render::keepalived_conf(&cluster, &format!("n{n}")).expect("renders");
            std::hint::black_box(conf);
        }
        let t2 = Instant::now();
        validate.push(t1 - t0);
        render_all.push(t2 - t1);
        total.push(t2 - t0);
    }
    println!("| measure ({NODES} nodes, {GROUPS} groups, {} bytes of YAML, {RUNS} runs) | median | max |", text.len());
    println!("| --- | --- | --- |");
    for (name, samples) in [
        ("parse + validate cluster.yml", validate),
        (
            &*format!("render keepalived.conf for all {NODES} nodes"),
            render_all,
        ),
        ("validate + render all", total),
    ] {
        let (median, max) = stats(samples);
        println!(
            "| {name} | {:.2} ms | {:.2} ms |",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}
