//! The writers against the real tools, each run inside a network namespace
//! of its own (root only): a sync writes our chains and jumps once, a
//! second sync removes stale chains without duplicating jumps, and cleanup
//! removes all of ours while a chain, a jump and a table of someone else
//! stay.
use std::process::Command;

use strait_tests::{NetNs, require_root};

use super::model::{Options, ServicePort};
use super::program::{self, IptablesBackend, RulesMode};

fn services() -> Vec<ServicePort> {
    let mut a = ServicePort::cluster_ip(
        "ns1",
        "svc1",
        "p80",
        "10.96.0.41:80".parse().unwrap(),
        vec![
            "10.244.1.1:80".parse().unwrap(),
            "10.244.2.1:80".parse().unwrap(),
        ],
    );
    a.node_port = Some(30080);
    a.affinity_seconds = Some(600);
    let b = ServicePort::cluster_ip(
        "ns2",
        "svc2",
        "p80",
        "10.96.0.42:80".parse().unwrap(),
        vec!["10.244.1.2:80".parse().unwrap()],
    );
    vec![a, b]
}

fn options() -> Options {
    Options {
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        service_cidr: Some("10.96.0.0/12".parse().unwrap()),
    }
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn iptables_round_trip(backend: IptablesBackend) {
    let ns = NetNs::new("kl-ipt").expect("netns");
    ns.run(|| {
        let ipt = match backend {
            IptablesBackend::Nft => "iptables-nft",
            IptablesBackend::Legacy => "iptables-legacy",
        };
        // Someone else's chain and jump, and kubelet's KUBE-FIREWALL.
        sh(ipt, &["-t", "nat", "-N", "MY-OWN"]);
        sh(ipt, &["-t", "nat", "-A", "PREROUTING", "-j", "MY-OWN"]);
        sh(ipt, &["-N", "KUBE-FIREWALL"]);
        sh(ipt, &["-A", "INPUT", "-j", "KUBE-FIREWALL"]);
        let mode = RulesMode::Iptables(backend);
        let (all, opts) = (services(), options());
        program::sync(mode, &all, &opts).expect("first sync");
        program::sync(mode, &all, &opts).expect("second sync");
        let saved = sh(backend.save(), &[]);
        let jumps = saved
            .lines()
            .filter(|l| l.starts_with("-A PREROUTING") && l.ends_with("-j KUBE-SERVICES"))
            .count();
        assert_eq!(jumps, 1, "one PREROUTING jump after two syncs:\n{saved}");
        assert!(saved.contains(":KUBE-SVC-"), "{saved}");
        let existing = program::read_iptables(backend).unwrap();
        assert_eq!(existing.jumps.len(), 12, "{:?}", existing.jumps);

        let report = program::sync(mode, &all[..1], &opts).expect("sync without svc2");
        assert!(
            report.stale >= 2,
            "svc2's SVC and SEP chains are stale: {report:?}"
        );
        let after = program::read_iptables(backend).unwrap();
        assert!(after.nat_chains.len() < existing.nat_chains.len());

        program::cleanup(mode).expect("cleanup");
        assert!(program::read_iptables(backend).unwrap().is_empty());
        let saved = sh(backend.save(), &[]);
        assert!(saved.contains("-A PREROUTING -j MY-OWN"), "{saved}");
        assert!(saved.contains("-A INPUT -j KUBE-FIREWALL"), "{saved}");
    });
}

#[test]
fn iptables_nft_sync_and_cleanup_touch_only_ours() {
    if require_root() {
        iptables_round_trip(IptablesBackend::Nft);
    }
}

#[test]
fn iptables_legacy_sync_and_cleanup_touch_only_ours() {
    if require_root() {
        iptables_round_trip(IptablesBackend::Legacy);
    }
}

#[test]
fn nftables_sync_and_cleanup_touch_only_ours() {
    if !require_root() {
        return;
    }
    let ns = NetNs::new("kl-nft").expect("netns");
    ns.run(|| {
        sh("nft", &["add", "table", "ip", "other"]);
        sh("nft", &["add", "chain", "ip", "other", "mine"]);
        let (all, opts) = (services(), options());
        program::sync(RulesMode::Nftables, &all, &opts).expect("first sync");
        program::sync(RulesMode::Nftables, &all, &opts).expect("second sync");
        let listed = program::read_nftables().unwrap();
        assert!(
            listed.sets.iter().any(|s| s.starts_with("affinity-")),
            "{listed:?}"
        );
        let report = program::sync(RulesMode::Nftables, &all[..1], &opts).expect("third sync");
        assert!(report.stale >= 2, "{report:?}");
        let after = program::read_nftables().unwrap();
        assert!(
            !after.chains.iter().any(|c| c.contains("ns2/svc2")),
            "{after:?}"
        );
        program::cleanup(RulesMode::Nftables).expect("cleanup");
        assert!(!program::read_nftables().unwrap().table);
        assert!(sh("nft", &["list", "tables"]).contains("table ip other"));
    });
}
