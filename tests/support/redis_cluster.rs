//! A real Redis Cluster on loopback for tests: three `redis-server`
//! masters (and a replica of each, if asked) joined with `redis-cli
//! --cluster create`, ready once every node says `cluster_state:ok` and
//! every replica is in sync; a node can be killed, or a replica promoted
//! (`CLUSTER FAILOVER`), mid-test.
//! Nodes declare a master failed after 1 s (`--cluster-node-timeout 1000`).
//!
//! Include it next to the single server's harness:
//! `#[path = "support/redis_server.rs"] mod redis_server;` and
//! `#[path = "support/redis_cluster.rs"] mod redis_cluster;`.
//!
//! A missing `redis-server` or `redis-cli` FAILS the test (never skips it):
//! both come with `apt-get install -y redis-server`.

#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;

const READY_WITHIN: Duration = Duration::from_secs(20);

/// Three masters sharing the 16384 slots, with or without replicas.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// A cluster of three masters, every slot served.
    pub fn start() -> Self {
        Self::start_with(0)
    }

    /// Three masters and a replica of each (six nodes).
    pub fn start_with_replicas() -> Self {
        Self::start_with(1)
    }

    fn start_with(replicas: usize) -> Self {
        let count = 3 * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| RedisServer::start_cluster_node())
            .collect();
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(
            nodes
                .iter()
                .map(|node| format!("127.0.0.1:{}", node.port())),
        );
        create.extend(["--cluster-replicas".to_owned(), replicas.to_string()]);
        create.push("--cluster-yes".to_owned());
        let output = redis_cli(&create);
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        let deadline = Instant::now() + READY_WITHIN;
        for node in 0..cluster.nodes.len() {
            loop {
                let info = cluster.cli(node, &["CLUSTER", "INFO"]);
                let replication = cluster.cli(node, &["INFO", "replication"]);
                let synced = replication.contains("role:master")
                    || replication.contains("master_link_status:up");
                if info.contains("cluster_state:ok") && synced {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {node} not ready within {READY_WITHIN:?}: {info}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        cluster
    }

    /// `redis://127.0.0.1:<port>/` of every node, the seed list.
    pub fn urls(&self) -> Vec<url::Url> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The node `n`.
    pub fn node(&self, n: usize) -> &RedisServer {
        &self.nodes[n]
    }

    /// Kills node `n` (SIGKILL).
    pub fn kill(&mut self, n: usize) {
        self.nodes[n].stop();
    }

    /// The index of the master that serves `key`'s slot (asked of a
    /// running node).
    pub fn node_of(&self, key: &str) -> usize {
        let asked = self
            .nodes
            .iter()
            .position(RedisServer::is_running)
            .expect("a running node");
        let slot: u16 = self
            .cli(asked, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number");
        (0..self.nodes.len())
            .find(|&n| self.nodes[n].is_running() && self.own_slots(n).contains(&slot))
            .unwrap_or_else(|| panic!("no running node serves slot {slot}"))
    }

    /// The index of the replica of master `n`.
    pub fn replica_of(&self, n: usize) -> usize {
        let id = self.cli(n, &["CLUSTER", "MYID"]);
        let replicas = self.cli(n, &["CLUSTER", "REPLICAS", id.trim()]);
        let port: u16 = replicas
            .split_whitespace()
            .nth(1)
            .and_then(|addr| addr.split(['@', ':']).nth(1))
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("master {n} has no replica: {replicas}"));
        self.nodes
            .iter()
            .position(|node| node.port() == port)
            .expect("the replica is a node of this cluster")
    }

    /// Promotes replica `n` with `CLUSTER FAILOVER` (it first catches up
    /// with its master, so it has every write the master acknowledged) and
    /// waits until it is a master and its old master a replica.
    pub fn failover(&self, n: usize) {
        let role = self.cli(n, &["ROLE"]);
        let master_port: u16 = role
            .lines()
            .nth(2)
            .and_then(|port| port.trim().parse().ok())
            .unwrap_or_else(|| panic!("node {n} is not a replica: {role}"));
        let master = self
            .nodes
            .iter()
            .position(|node| node.port() == master_port)
            .expect("the master is a node of this cluster");
        assert_eq!(self.cli(n, &["CLUSTER", "FAILOVER"]).trim(), "OK");
        let deadline = Instant::now() + READY_WITHIN;
        while !(self.cli(n, &["ROLE"]).starts_with("master")
            && self.cli(master, &["ROLE"]).starts_with("slave"))
        {
            assert!(Instant::now() < deadline, "replica {n} not promoted");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The slots node `n` serves, from its own `CLUSTER NODES` line.
    fn own_slots(&self, n: usize) -> Vec<u16> {
        let nodes = self.cli(n, &["CLUSTER", "NODES"]);
        let line = nodes
            .lines()
            .find(|line| line.contains("myself"))
            .expect("CLUSTER NODES has a `myself` line");
        let mut slots = Vec::new();
        for range in line.split_whitespace().skip(8) {
            if range.starts_with('[') {
                continue; // a slot being migrated: not served yet
            }
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            let (first, last): (u16, u16) = (first.parse().unwrap(), last.parse().unwrap());
            slots.extend(first..=last);
        }
        slots
    }

    /// `redis-cli -p <port of n> args…`, its stdout.
    pub fn cli(&self, n: usize, args: &[&str]) -> String {
        let mut all = vec!["-p".to_owned(), self.nodes[n].port().to_string()];
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        let output = redis_cli(&all);
        assert!(
            output.status.success(),
            "redis-cli {all:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

fn redis_cli(args: &[String]) -> std::process::Output {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "`redis-cli` is needed for the cluster tests ({error}): \
                 install it with `apt-get install -y redis-server` (it brings redis-tools)"
            )
        })
}
