//! A dump the kernel flags as interrupted (`NLM_F_DUMP_INTR`: the table
//! changed while it was being read) is read again, so callers never act on
//! a torn list. Provoked for real: 2 000 addresses (a dump of many
//! datagrams) listed while another thread adds and removes one address.
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strait_netlink::{Netlink, addr, link};

const BASE: u32 = 2_000;

fn base_addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 77, (i / 256) as u8, (i % 256) as u8))
}

#[test]
fn an_interrupted_dump_is_restarted_and_returns_a_whole_list() {
    if !strait_tests::require_root() {
        return;
    }
    let ns = strait_tests::NetNs::new("dump-intr").expect("netns");
    ns.run(|| {
        let mut nl = Netlink::open().expect("netlink");
        let lo = link::get(&mut nl, "lo")
            .expect("lo")
            .expect("lo exists")
            .index;
        for i in 0..BASE {
            addr::add(&mut nl, lo, base_addr(i), 32).expect("add base address");
        }
        let want: BTreeSet<IpAddr> = (0..BASE).map(base_addr).collect();
        let whole = |list: &[(IpAddr, u8)]| {
            let seen: Vec<IpAddr> = list
                .iter()
                .map(|(ip, _)| *ip)
                .filter(|ip| *ip != IpAddr::V4(Ipv4Addr::LOCALHOST))
                .collect();
            let unique: BTreeSet<IpAddr> = seen.iter().copied().collect();
            assert_eq!(unique.len(), seen.len(), "no address listed twice");
            assert!(
                want.is_subset(&unique),
                "every stable address listed ({} of {BASE})",
                want.intersection(&unique).count()
            );
        };
        let stop = AtomicBool::new(false);
        // The churn's pause adapts to the machine: long enough that a
        // restarted dump can complete, short enough to interrupt dumps.
        let pause_us = AtomicU64::new(300);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (retried_whole, calls) = std::thread::scope(|s| {
            // Threads inherit the test namespace of the thread that spawns them.
            s.spawn(|| {
                let mut churn = Netlink::open().expect("netlink");
                let extra = IpAddr::V4(Ipv4Addr::new(10, 78, 0, 1));
                while !stop.load(Ordering::Relaxed) {
                    addr::add(&mut churn, lo, extra, 32).expect("add extra");
                    addr::delete(&mut churn, lo, extra, 32).expect("delete extra");
                    std::thread::sleep(Duration::from_micros(pause_us.load(Ordering::Relaxed)));
                }
            });
            let mut calls = 0;
            let mut retried_whole = false;
            while !retried_whole && Instant::now() < deadline {
                calls += 1;
                let before = nl.dump_restarts();
                match addr::list(&mut nl, lo) {
                    Ok(list) => {
                        whole(&list);
                        if nl.dump_restarts() > before {
                            // Interrupted, read again, and whole.
                            retried_whole = true;
                        } else {
                            let p = pause_us.load(Ordering::Relaxed);
                            pause_us.store((p / 2).max(20), Ordering::Relaxed);
                        }
                    }
                    // Interrupted on every try: reported, never a torn list.
                    Err(e) => {
                        assert!(
                            matches!(e, strait_netlink::NetlinkError::DumpInterrupted),
                            "{e}"
                        );
                        let p = pause_us.load(Ordering::Relaxed);
                        pause_us.store((p * 2).min(100_000), Ordering::Relaxed);
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            (retried_whole, calls)
        });
        eprintln!(
            "{calls} dumps, {} restarts, churn pause at the end {} us",
            nl.dump_restarts(),
            pause_us.load(Ordering::Relaxed)
        );
        assert!(
            retried_whole,
            "no dump was interrupted and then read whole in {calls} tries: NLM_F_DUMP_INTR \
             was not provoked, or the retry is missing"
        );
        // Without churn, a dump is whole at once.
        whole(&addr::list(&mut nl, lo).expect("list"));
    });
}
