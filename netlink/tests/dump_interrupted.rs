//! A dump the kernel flags as interrupted (`NLM_F_DUMP_INTR`: the table
//! changed while it was being read) is read again, so callers never act on
//! a torn list. Provoked for real: 2 000 addresses (a dump of many
//! datagrams) listed while another thread adds and removes one address.
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};

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
        let stop = AtomicBool::new(false);
        let (lists, restarts) = std::thread::scope(|s| {
            // Threads inherit the test namespace of the thread that spawns them.
            s.spawn(|| {
                let mut churn = Netlink::open().expect("netlink");
                let extra = IpAddr::V4(Ipv4Addr::new(10, 78, 0, 1));
                while !stop.load(Ordering::Relaxed) {
                    addr::add(&mut churn, lo, extra, 32).expect("add extra");
                    addr::delete(&mut churn, lo, extra, 32).expect("delete extra");
                    std::thread::sleep(std::time::Duration::from_micros(300));
                }
            });
            let mut lists = 0;
            for _ in 0..300 {
                match addr::list(&mut nl, lo) {
                    Ok(list) => {
                        lists += 1;
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
                    }
                    // Ten interruptions in a row: reported, never a torn list.
                    Err(e) => assert!(
                        matches!(e, strait_netlink::NetlinkError::DumpInterrupted),
                        "{e}"
                    ),
                }
                if nl.dump_restarts() > 0 && lists >= 20 {
                    break;
                }
            }
            stop.store(true, Ordering::Relaxed);
            (lists, nl.dump_restarts())
        });
        eprintln!("{lists} whole lists, {restarts} dumps restarted");
        assert!(
            restarts > 0,
            "no dump was interrupted in {lists} lists: NLM_F_DUMP_INTR was not provoked"
        );
        assert!(lists > 0, "some dump completed");
    });
}
