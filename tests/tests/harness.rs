//! Proof that the netns harness works: connectivity, isolation, the safety check, cgroups,
//! bpffs, parallelism, the root policy, and that nothing is left behind, even when a test
//! panics.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strait_tests::cgroup::find_cgroup2_mount;
use strait_tests::names::{self, ifname_prefix_for, object_prefix_for};
use strait_tests::{
    Bpffs, Cgroup, Cgroup2Root, NetNs, PinGuard, SAFETY_RULE, TcpEcho, UdpEcho, VethPair, Via,
    bridged_hosts, require_root, tcp_ask, two_hosts, udp_ask,
};

const T: Duration = Duration::from_secs(3);

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn routes(ns: &NetNs) -> String {
    ns.ip(&["-4", "route", "show", "table", "all"]).unwrap()
}

#[test]
fn two_hosts_tcp_and_udp_echo() {
    if !require_root() {
        return;
    }
    let net = two_hosts().unwrap();
    let tcp = TcpEcho::start(&net.b, "tcp-b", (net.b_addr, 7000).into()).unwrap();
    let udp = UdpEcho::start(&net.b, "udp-b", (net.b_addr, 7001).into()).unwrap();
    let (t, u) = net.a.run(|| {
        (
            tcp_ask(tcp.addr(), T).unwrap(),
            udp_ask(udp.addr(), T).unwrap(),
        )
    });
    assert_eq!(t.name, "tcp-b");
    assert_eq!(t.peer.ip(), net.a_addr);
    assert_eq!(u.name, "udp-b");
    assert_eq!(u.peer.ip(), net.a_addr);

    // The other direction, with a server on an ephemeral port.
    let back = TcpEcho::start(&net.a, "tcp-a", (net.a_addr, 0).into()).unwrap();
    let r = net.b.run(|| tcp_ask(back.addr(), T)).unwrap();
    assert_eq!((r.name.as_str(), r.peer.ip()), ("tcp-a", net.b_addr.into()));

    // The echo servers are not reachable from a third, unconnected namespace.
    let lonely = NetNs::new("lonely").unwrap();
    let err = lonely.run(|| tcp_ask(tcp.addr(), T)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NetworkUnreachable, "{err}");
}

#[test]
fn no_default_route_so_unrouted_addresses_fail_fast() {
    if !require_root() {
        return;
    }
    let net = two_hosts().unwrap();
    // Only the kernel's connected and local routes exist.
    let r = routes(&net.a);
    assert!(!r.contains("default"), "unexpected default route:\n{r}");
    for line in r.lines() {
        assert!(line.contains("proto kernel"), "non-kernel route: {line}");
    }
    let start = Instant::now();
    let (tcp_err, udp_err) = net.a.run(|| {
        let tcp =
            std::net::TcpStream::connect_timeout(&"10.251.0.1:80".parse().unwrap(), T).unwrap_err();
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let udp = sock.send_to(b"x", "198.51.100.1:53").unwrap_err();
        (tcp, udp)
    });
    assert_eq!(tcp_err.raw_os_error(), Some(libc::ENETUNREACH), "{tcp_err}");
    assert_eq!(udp_err.raw_os_error(), Some(libc::ENETUNREACH), "{udp_err}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn routes_and_addresses_helpers() {
    if !require_root() {
        return;
    }
    let net = two_hosts().unwrap();
    net.b.add_addr("lo", "10.99.0.1/32").unwrap();
    let echo = TcpEcho::start(&net.b, "vip", "10.99.0.1:80".parse().unwrap()).unwrap();
    let unrouted = net.a.run(|| tcp_ask(echo.addr(), T)).unwrap_err();
    assert_eq!(unrouted.kind(), io::ErrorKind::NetworkUnreachable);
    net.a
        .add_route("10.99.0.0/24", Via::Gateway(&net.b_addr.to_string()))
        .unwrap();
    let r = net.a.run(|| tcp_ask(echo.addr(), T)).unwrap();
    assert_eq!(r.name, "vip");
    net.a.del_route("10.99.0.0/24").unwrap();
    assert!(!routes(&net.a).contains("10.99.0.0"));
    net.a.set_mtu(net.link.a_name(), 1400).unwrap();
    assert!(
        net.a
            .ip(&["link", "show", net.link.a_name()])
            .unwrap()
            .contains("mtu 1400")
    );
    net.a.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let fwd = net
        .a
        .run(|| fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap());
    assert_eq!(fwd.trim(), "1");
    assert!(net.a.sysctl("kernel.pid_max", "1").is_err());
}

#[test]
fn bridge_in_third_netns_connects_two_hosts() {
    if !require_root() {
        return;
    }
    let lan = bridged_hosts(2).unwrap();
    let ports = lan
        .switch
        .ip(&["-o", "link", "show", "master", lan.bridge.name()])
        .unwrap();
    assert_eq!(ports.lines().count(), 2, "{ports}");
    let (h0, h1) = (&lan.hosts[0], &lan.hosts[1]);
    let echo = TcpEcho::start(&h1.ns, "h1", (h1.addr, 9000).into()).unwrap();
    let udp = UdpEcho::start(&h0.ns, "h0", (h0.addr, 9001).into()).unwrap();
    let r = h0.ns.run(|| tcp_ask(echo.addr(), T)).unwrap();
    assert_eq!((r.name.as_str(), r.peer.ip()), ("h1", h0.addr.into()));
    let r = h1.ns.run(|| udp_ask(udp.addr(), T)).unwrap();
    assert_eq!((r.name.as_str(), r.peer.ip()), ("h0", h1.addr.into()));
    // Without the bridge there is no path.
    lan.switch
        .ip(&["link", "set", "dev", lan.bridge.name(), "down"])
        .unwrap();
    assert!(
        h0.ns
            .run(|| tcp_ask(echo.addr(), Duration::from_millis(300)))
            .is_err()
    );
}

#[test]
fn command_in_cgroup_runs_in_netns_and_cgroup() {
    if !require_root() {
        return;
    }
    let net = two_hosts().unwrap();
    let cg = Cgroup::new("cmd").unwrap();
    let sleeper = net
        .a
        .command("sleep")
        .arg("30")
        .in_cgroup(&cg)
        .unwrap()
        .spawn()
        .unwrap();
    let pid = sleeper.id();
    assert!(cg.procs().unwrap().contains(&pid), "{:?}", cg.procs());
    let ino = fs::metadata(format!("/proc/{pid}/ns/net")).unwrap().ino();
    assert_eq!(ino, net.a.inode());
    assert_eq!(net.a.pids(), vec![pid]);

    let out = net
        .a
        .command("sh")
        .args(["-c", "cat /proc/self/cgroup; ip -o link"])
        .in_cgroup(&cg)
        .unwrap()
        .output_checked()
        .unwrap();
    assert!(
        out.lines()
            .any(|l| l == format!("0::{}", cg.relative_path())),
        "not in the cgroup:\n{out}"
    );
    let links: BTreeSet<&str> = out
        .lines()
        .filter(|l| l.contains(": <") || l.contains(": lo:"))
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap())
        .collect();
    assert_eq!(links, BTreeSet::from(["lo", net.link.a_name()]), "{out}");

    // Dropping the cgroup kills what is still inside, even unguarded processes.
    let mut loose = Command::new("sleep").arg("30").spawn().unwrap();
    cg.add_pid(loose.id()).unwrap();
    drop(sleeper);
    let path = cg.path().to_path_buf();
    drop(cg);
    let status = loose.wait().unwrap();
    assert!(!status.success());
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn cgroup_children_and_own_cgroup2_mount() {
    if !require_root() {
        return;
    }
    let root = Cgroup2Root::mount_own().unwrap();
    let own_mount = root.path().to_path_buf();
    assert!(root.is_own_mount());
    let cg = Cgroup::new_under(&root, "own").unwrap();
    let child = cg.child("pod-1").unwrap();
    let mut p = ChildProc::sleep();
    child.add_pid(p.0.id()).unwrap();
    // The same hierarchy shows through the system's cgroup2 mount.
    if let Some(system) = find_cgroup2_mount().unwrap() {
        let seen = system.join(cg.relative_path().trim_start_matches('/'));
        assert!(
            seen.join("pod-1").is_dir(),
            "{} not visible",
            seen.display()
        );
    }
    // A sub-cgroup made behind the harness's back is removed too.
    fs::create_dir(cg.path().join("made-by-product")).unwrap();
    let cg_path = cg.path().to_path_buf();
    drop(child);
    drop(cg);
    assert!(!p.0.wait().unwrap().success());
    assert!(!cg_path.exists());
    drop(root);
    assert!(!own_mount.exists());
    assert!(
        !fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(own_mount.to_str().unwrap())
    );
}

/// A `sleep` in the root netns, killed on drop (no network involved).
struct ChildProc(std::process::Child);
impl ChildProc {
    fn sleep() -> ChildProc {
        ChildProc(Command::new("sleep").arg("30").spawn().unwrap())
    }
}
impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_returns_values_propagates_panics_and_threads_inherit() {
    if !require_root() {
        return;
    }
    let ns = NetNs::new("run").unwrap();
    let ino = |p: &str| fs::metadata(p).unwrap().ino();
    let (here, spawned) = ns.run(|| {
        let here = ino("/proc/thread-self/ns/net");
        let spawned = std::thread::spawn(move || ino("/proc/thread-self/ns/net"))
            .join()
            .unwrap();
        (here, spawned)
    });
    assert_eq!(here, ns.inode());
    assert_eq!(spawned, ns.inode());
    assert_ne!(ino("/proc/thread-self/ns/net"), ns.inode());
    let err = catch_unwind(AssertUnwindSafe(|| ns.run(|| panic!("boom inside")))).unwrap_err();
    assert_eq!(panic_message(err), "boom inside");
}

#[test]
fn isolation_check_refuses_unexpected_links() {
    if !require_root() {
        return;
    }
    let ns = NetNs::new("intruder").unwrap();
    ns.assert_isolated();
    // A link made behind the harness's back (this kernel has no `dummy`; a bridge is
    // just as unexpected).
    let intruder = names::ifname('d');
    let st = Command::new("ip")
        .args(["netns", "exec", ns.name(), "ip", "link", "add", &intruder])
        .args(["type", "bridge"])
        .status()
        .unwrap();
    assert!(st.success());
    let err = ns.check_isolated().unwrap_err().to_string();
    assert!(
        err.contains(&intruder) && err.contains("not created by the harness"),
        "{err}"
    );

    let msg = panic_message(catch_unwind(AssertUnwindSafe(|| ns.run(|| ()))).unwrap_err());
    assert!(
        msg.contains(SAFETY_RULE) && msg.contains(&intruder),
        "{msg}"
    );
    let msg =
        panic_message(catch_unwind(AssertUnwindSafe(|| ns.command("true").status())).unwrap_err());
    assert!(msg.contains("NETWORK-SAFETY RULE"), "{msg}");

    // Once told that product code creates links here, a bridge is acceptable...
    ns.trust_links_created_by_product();
    ns.assert_isolated();
    ns.run(|| ());
    // ...but not a kind that can lead out of the machine.
    let mac = names::ifname('m');
    ns.ip(&["link", "add", &mac, "link", &intruder, "type", "macvlan"])
        .unwrap();
    let err = ns.check_isolated().unwrap_err().to_string();
    assert!(err.contains(&mac) && err.contains("macvlan"), "{err}");
}

#[test]
fn trusted_product_veths_must_peer_into_test_namespaces() {
    if !require_root() {
        return;
    }
    let node = NetNs::new("node").unwrap();
    let pod = NetNs::new("pod").unwrap();
    // "Product" veth between two test namespaces, created behind the harness's back.
    let (v1, v2) = (names::ifname('p'), names::ifname('q'));
    node.ip(&[
        "link",
        "add",
        &v1,
        "type",
        "veth",
        "peer",
        "name",
        &v2,
        "netns",
        pod.name(),
    ])
    .unwrap();
    assert!(node.check_isolated().is_err());
    node.trust_links_created_by_product();
    node.assert_isolated();
    // A default route over it is fine: it still only reaches a test namespace.
    node.set_up(&v1).unwrap();
    node.add_route("default", Via::Dev(&v1)).unwrap();
    node.assert_isolated();

    // A product veth whose peer lands in the root netns is refused even when trusted.
    // It is deleted with `node`, which destroys both ends.
    let (r1, r2) = (names::ifname('p'), names::ifname('r'));
    let root = format!("/proc/{}/ns/net", std::process::id());
    node.ip(&[
        "link", "add", &r1, "type", "veth", "peer", "name", &r2, "netns", &root,
    ])
    .unwrap();
    let err = node.check_isolated().unwrap_err().to_string();
    assert!(
        err.contains(&r1) && err.contains("not a harness namespace"),
        "{err}"
    );
    node.ip(&["link", "del", &r1]).unwrap();
    node.assert_isolated();

    // A vxlan made inside the namespace encapsulates through the namespace's own links.
    let vx = names::ifname('v');
    node.ip(&[
        "link", "add", &vx, "type", "vxlan", "id", "42", "dstport", "4789",
    ])
    .unwrap();
    node.assert_isolated();
    // One created from the root netns keeps its socket there, even though the device
    // lands directly in `node` (it never appears in the root link list).
    let vx_root = names::ifname('w');
    let st = Command::new("ip")
        .args(["link", "add", &vx_root, "netns", node.name()])
        .args(["type", "vxlan", "id", "43", "dstport", "4790"])
        .status()
        .unwrap();
    assert!(st.success());
    let err = node.check_isolated().unwrap_err().to_string();
    assert!(
        err.contains(&vx_root) && err.contains("not a harness namespace"),
        "{err}"
    );
}

#[test]
fn root_end_veth_is_opt_in_and_routes_over_it_are_refused() {
    if !require_root() {
        return;
    }
    let ns = NetNs::new("hostside").unwrap();
    let veth = VethPair::with_root_end_unsafe_for_tests(&ns)
        .create()
        .unwrap();
    let root_end = veth.b_name().to_string();
    assert!(veth.b().netns().is_none());
    let shown = Command::new("ip")
        .args(["-d", "link", "show", "dev", &root_end])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains(&format!("alias {}", object_prefix_for(std::process::id()))),
        "root end not marked: {shown}"
    );
    ns.assert_isolated();
    ns.add_route("203.0.113.0/24", Via::Dev(veth.a_name()))
        .unwrap();
    let err = ns.check_isolated().unwrap_err().to_string();
    assert!(err.contains("into the root netns"), "{err}");
    ns.del_route("203.0.113.0/24").unwrap();
    ns.assert_isolated();
    drop(veth);
    let st = Command::new("ip")
        .args(["link", "show", "dev", &root_end])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success(), "root end {root_end} survived its guard");
}

#[test]
fn parallel_threads_get_distinct_namespaces_and_links() {
    if !require_root() {
        return;
    }
    let results: Vec<(String, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    let net = two_hosts().unwrap();
                    let echo =
                        TcpEcho::start(&net.b, &format!("t{i}"), (net.b_addr, 80).into()).unwrap();
                    let r = net.a.run(|| tcp_ask(echo.addr(), T)).unwrap();
                    assert_eq!(r.name, format!("t{i}"));
                    (
                        net.a.name().to_string(),
                        net.b.name().to_string(),
                        net.link.a_name().to_string(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: BTreeSet<&String> = results.iter().flat_map(|(a, b, l)| [a, b, l]).collect();
    assert_eq!(all.len(), 24, "name clash: {results:?}");
}

#[test]
fn bpffs_pins_and_unmounts() {
    if !require_root() {
        return;
    }
    let fs_ = Bpffs::new().unwrap();
    let mount = fs_.path().to_path_buf();
    assert!(mounted(&mount, "bpf"));
    let map = bpf_array_map();
    let pin = PinGuard::new(fs_.pin_path("test_map"));
    bpf_pin(&map, pin.path()).unwrap();
    assert!(pin.path().exists());
    drop(pin);
    assert!(!fs_.pin_path("test_map").exists());
    bpf_pin(&map, &fs_.pin_path("left_pinned")).unwrap();
    drop(fs_);
    assert!(!mounted(&mount, "bpf"));
    assert!(!mount.exists());
}

fn mounted(path: &Path, fstype: &str) -> bool {
    strait_tests::mounts::mountinfo()
        .unwrap()
        .iter()
        .any(|m| m.mount_point == path && m.fstype == fstype)
}

/// BPF_MAP_CREATE of a one-slot array, by raw syscall (the harness has no aya).
fn bpf_array_map() -> OwnedFd {
    let mut attr = [0u32; 32];
    attr[0] = 2; // BPF_MAP_TYPE_ARRAY
    attr[1] = 4; // key_size
    attr[2] = 8; // value_size
    attr[3] = 1; // max_entries
    // SAFETY: attr is a zeroed, correctly sized bpf_attr for BPF_MAP_CREATE (cmd 0).
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), size_of_val(&attr)) };
    assert!(fd >= 0, "BPF_MAP_CREATE: {}", io::Error::last_os_error());
    // SAFETY: the kernel just gave us this fd.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// BPF_OBJ_PIN of `fd` at `path`.
fn bpf_pin(fd: &OwnedFd, path: &Path) -> io::Result<()> {
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut attr = [0u64; 16];
    attr[0] = cpath.as_ptr() as u64; // pathname
    attr[1] = fd.as_raw_fd() as u64; // bpf_fd (low 32 bits), file_flags 0
    // SAFETY: attr is a zeroed bpf_attr for BPF_OBJ_PIN (cmd 6); cpath outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 6, attr.as_ptr(), size_of_val(&attr)) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn sweep_removes_what_dead_processes_left() {
    if !require_root() {
        return;
    }
    strait_tests::sweep::ensure_swept();
    // A pid that just exited stands for a test process that was killed.
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let netns = format!("{}1-leftover", object_prefix_for(pid));
    let cgroup_root = find_cgroup2_mount().unwrap().expect("cgroup2 mounted");
    let cgroup = cgroup_root.join(format!("{}2-leftover", object_prefix_for(pid)));
    let link = format!("{}1x", ifname_prefix_for(pid));
    let alias = format!("{}0-rootlink", object_prefix_for(pid));
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
    ip(&["netns", "add", &netns]);
    fs::create_dir(&cgroup).unwrap();
    let scratch = std::env::temp_dir().join(format!("{}3-scratch", object_prefix_for(pid)));
    fs::write(&scratch, "x").unwrap();
    // Root links made here are down, unaddressed bridges (this kernel has no `dummy`).
    ip(&["link", "add", &link, "type", "bridge"]);
    ip(&["link", "set", "dev", &link, "alias", &alias]);
    // A root link with our name shape but without the alias is not ours to delete.
    let unmarked = format!("{}2x", ifname_prefix_for(pid));
    ip(&["link", "add", &unmarked, "type", "bridge"]);

    let report = strait_tests::sweep_stale().unwrap();
    let unmarked_survived = Command::new("ip")
        .args(["link", "del", &unmarked])
        .status()
        .unwrap()
        .success();
    assert!(report.netns.contains(&netns), "{report:?}");
    assert!(report.cgroups.contains(&cgroup), "{report:?}");
    assert!(report.links.contains(&link), "{report:?}");
    assert!(!Path::new("/run/netns").join(&netns).exists());
    assert!(!cgroup.exists());
    assert!(
        report.temp.contains(&scratch) && !scratch.exists(),
        "{report:?}"
    );
    assert!(
        unmarked_survived,
        "sweep deleted a link it could not prove was ours"
    );
}

#[test]
fn require_root_skips_loudly_without_ci_and_fails_with_ci() {
    if !require_root() {
        return;
    }
    let run = |ci: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "require_root_scenario",
            "--exact",
            "--nocapture",
            "--include-ignored",
        ])
        .env(SCENARIO_ENV, "require-root")
        .env_remove("CI");
        if let Some(v) = ci {
            cmd.env("CI", v);
        }
        // SAFETY: setgid/setuid are async-signal-safe; drop to `nobody` before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run(None);
    assert!(ok, "{text}");
    assert!(
        text.contains("SKIPPED (needs root): require_root_scenario"),
        "{text}"
    );
    assert!(
        text.contains("BODY-SKIPPED") && !text.contains("BODY-RAN"),
        "{text}"
    );
    let (ok, text) = run(Some("true"));
    assert!(!ok, "with CI=true a non-root run must fail:\n{text}");
    assert!(text.contains("CI is set"), "{text}");
}

#[test]
#[ignore = "run as a child by require_root_skips_loudly_without_ci_and_fails_with_ci"]
fn require_root_scenario() {
    if std::env::var(SCENARIO_ENV).as_deref() != Ok("require-root") {
        return;
    }
    if !require_root() {
        println!("BODY-SKIPPED");
        return;
    }
    println!("BODY-RAN");
}

// ---- cleanup proof ----------------------------------------------------------------

const SCENARIO_ENV: &str = "STRAIT_HARNESS_SCENARIO";
const PIDFILE_ENV: &str = "STRAIT_HARNESS_PIDFILE";

/// Builds one of everything, records the pids of the processes it started, and then
/// panics (mode `panic`) or returns normally (mode `pass`). Run in a child process by
/// the cleanup-proof tests; does nothing when run directly.
#[test]
#[ignore = "run as a child by the cleanup_proof tests"]
// Two processes are left unguarded on purpose: the NetNs and Cgroup guards must kill them.
#[allow(clippy::zombie_processes)]
fn cleanup_scenario() {
    let Ok(mode) = std::env::var(SCENARIO_ENV) else {
        return;
    };
    if mode != "panic" && mode != "pass" {
        return;
    }
    let pidfile = std::env::var(PIDFILE_ENV).unwrap();
    let lan = bridged_hosts(2).unwrap();
    let host0 = &lan.hosts[0].ns;
    let host1 = &lan.hosts[1].ns;
    let to_root = VethPair::with_root_end_unsafe_for_tests(host0)
        .create()
        .unwrap();
    let cg = Cgroup::new("scenario").unwrap();
    let pod_cg = cg.child("pod").unwrap();
    let bpffs = Bpffs::new().unwrap();
    let map = bpf_array_map();
    bpf_pin(&map, &bpffs.pin_path("pinned")).unwrap();
    let echo = TcpEcho::start(host1, "scenario", (lan.hosts[1].addr, 80).into()).unwrap();
    let r = host0.run(|| tcp_ask(echo.addr(), T)).unwrap();
    assert_eq!(r.name, "scenario");
    // Guarded, in netns + cgroup. None of these keeps the test's output open.
    let guarded = host0
        .command("sleep")
        .arg("300")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .in_cgroup(&pod_cg)
        .unwrap()
        .spawn()
        .unwrap();
    // Unguarded, only in a netns: the NetNs guard must kill it.
    let in_netns = host1
        .command("sleep")
        .arg("300")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
        .into_child();
    // Unguarded, only in a cgroup (root netns): the Cgroup guard must kill it.
    let in_cgroup = Command::new("sleep")
        .arg("300")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cg.add_pid(in_cgroup.id()).unwrap();
    fs::write(
        &pidfile,
        format!("{} {} {}", guarded.id(), in_netns.id(), in_cgroup.id()),
    )
    .unwrap();
    println!(
        "SCENARIO-READY root-veth={} netns={},{},{}",
        to_root.b_name(),
        lan.switch.name(),
        host0.name(),
        host1.name()
    );
    if mode == "panic" {
        panic!("scenario panics on purpose");
    }
}

fn run_scenario(mode: &str) -> (u32, Vec<u32>) {
    // The sweep must not run in this process after the child died, or it would hide
    // leftovers: run it now.
    strait_tests::sweep::ensure_swept();
    let pidfile = ScratchFile::new("pidfile");
    let logfile = ScratchFile::new("log");
    // Output goes to a file, not a pipe: a process leaked by a broken guard would hold a
    // pipe open and hang this test instead of failing it.
    let log = fs::File::create(&logfile.0).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "cleanup_scenario",
            "--exact",
            "--nocapture",
            "--include-ignored",
        ])
        .env(SCENARIO_ENV, mode)
        .env(PIDFILE_ENV, &pidfile.0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let child_pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scenario child did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = fs::read_to_string(&logfile.0).unwrap();
    assert!(
        text.contains("SCENARIO-READY"),
        "scenario did not get going:\n{text}"
    );
    assert!(
        !text.contains("cleanup of"),
        "a guard reported a cleanup failure:\n{text}"
    );
    if mode == "panic" {
        assert!(!status.success(), "child should have failed:\n{text}");
        assert!(text.contains("scenario panics on purpose"), "{text}");
    } else {
        assert!(status.success(), "child should have passed:\n{text}");
        assert!(text.contains("1 passed"), "{text}");
    }
    let pids = fs::read_to_string(&pidfile.0)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    (child_pid, pids)
}

/// A uniquely named file in the temp dir, removed on drop.
struct ScratchFile(std::path::PathBuf);
impl ScratchFile {
    fn new(tag: &str) -> ScratchFile {
        ScratchFile(std::env::temp_dir().join(names::object_name(tag)))
    }
}
impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Everything with `pid`'s names that is still around, found with plain tools rather
/// than the harness's own sweep code.
fn leftovers(pid: u32, pids: &[u32]) -> Vec<String> {
    let obj = object_prefix_for(pid);
    let ifp = ifname_prefix_for(pid);
    let mut found = Vec::new();
    let sh = |args: &[&str]| {
        String::from_utf8_lossy(&Command::new("ip").args(args).output().unwrap().stdout)
            .into_owned()
    };
    for line in sh(&["netns", "list"]).lines().filter(|l| l.contains(&obj)) {
        found.push(format!("netns: {line}"));
    }
    for line in sh(&["-o", "-d", "link", "show"])
        .lines()
        .filter(|l| l.contains(&format!(": {ifp}")) || l.contains(&obj))
    {
        found.push(format!("root link: {line}"));
    }
    fn walk(dir: &Path, needle: &str, found: &mut Vec<String>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name().to_string_lossy().contains(needle) {
                    found.push(format!("cgroup: {}", e.path().display()));
                }
                walk(&e.path(), needle, found);
            }
        }
    }
    walk(&find_cgroup2_mount().unwrap().unwrap(), &obj, &mut found);
    for line in fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&obj))
    {
        found.push(format!("mount: {line}"));
    }
    for e in fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with(&obj) {
            found.push(format!("temp dir: {}", e.path().display()));
        }
    }
    for &p in pids.iter().chain([&pid]) {
        // A zombie (state Z) has exited; it only waits for its new parent to reap it.
        if let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat"))
            && stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        {
            found.push(format!("process still running: {stat}"));
        }
    }
    found
}

fn assert_nothing_left(pid: u32, pids: &[u32]) {
    // Namespace teardown finishes asynchronously in the kernel; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = leftovers(pid, pids);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} left behind:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cleanup_proof_after_panic() {
    if !require_root() {
        return;
    }
    let (pid, pids) = run_scenario("panic");
    assert_eq!(pids.len(), 3);
    assert_nothing_left(pid, &pids);
}

#[test]
fn cleanup_proof_after_success() {
    if !require_root() {
        return;
    }
    let (pid, pids) = run_scenario("pass");
    assert_eq!(pids.len(), 3);
    assert_nothing_left(pid, &pids);
}

/// The leftover detector itself must be able to see leftovers, or the proofs above
/// prove nothing.
#[test]
fn leftover_detector_sees_live_objects() {
    if !require_root() {
        return;
    }
    let me = std::process::id();
    let ns = NetNs::new("detector").unwrap();
    let veth = VethPair::with_root_end_unsafe_for_tests(&ns)
        .create()
        .unwrap();
    let cg = Cgroup::new("detector").unwrap();
    let bpffs = Bpffs::new().unwrap();
    let left = leftovers(me, &[]).join("\n");
    for needle in [
        ns.name(),
        veth.b_name(),
        cg.path().to_str().unwrap(),
        bpffs.path().to_str().unwrap(),
    ] {
        assert!(left.contains(needle), "detector missed {needle}:\n{left}");
    }
}
