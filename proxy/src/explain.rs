//! `strait agent explain`: what the kernel maps hold for each service, read
//! from the pinned maps (not from an agent's memory), next to what the cluster
//! view says they should hold, with every difference flagged.
use std::{collections::BTreeSet, fmt, net::SocketAddr, path::Path};

use aya::maps::{HashMap, Map, MapData};
use strait_cluster::ClusterSnapshot;
use strait_ebpf_common::{PROTO_TCP, PROTO_UDP, maps};

use crate::{Frontend, FrontendSpec, KernelState, ProxyError, desired::service_frontends};

/// Reads the pinned service and backend maps under `pin_dir`.
pub fn read_pinned(pin_dir: &Path) -> Result<KernelState, ProxyError> {
    let open = |name: &'static str| {
        MapData::from_pin(pin_dir.join(name))
            .map(Map::HashMap)
            .map_err(|source| ProxyError::Map { map: name, source })
    };
    let services = HashMap::try_from(open(maps::SERVICES)?).map_err(|source| ProxyError::Map {
        map: maps::SERVICES,
        source,
    })?;
    let backends = HashMap::try_from(open(maps::BACKENDS)?).map_err(|source| ProxyError::Map {
        map: maps::BACKENDS,
        source,
    })?;
    KernelState::read(&services, &backends)
}

/// One frontend's comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendReport {
    /// The frontend.
    pub frontend: Frontend,
    /// What the cluster view wants.
    pub desired: FrontendSpec,
    /// What the kernel holds (`None`: the frontend is missing).
    pub kernel: Option<KernelView>,
}

/// One frontend as the pinned maps hold it, sorted for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelView {
    /// Backends the socket hooks choose from.
    pub backends: Vec<SocketAddr>,
    /// Backends external traffic is balanced over (external frontends).
    pub external_backends: Vec<SocketAddr>,
    /// The ClientIP affinity timeout, when set.
    pub affinity: Option<u32>,
}

impl FrontendReport {
    /// Every difference between the kernel and the desired state.
    pub fn problems(&self) -> Vec<String> {
        let Some(kernel) = &self.kernel else {
            return vec!["frontend missing from the kernel maps".into()];
        };
        let mut out = Vec::new();
        compare(
            &self.desired.backends,
            &kernel.backends,
            "backend",
            &mut out,
        );
        if self.desired.external_flags != 0 {
            compare(
                &self.desired.external_backends,
                &kernel.external_backends,
                "external backend",
                &mut out,
            );
        }
        if kernel.affinity != self.desired.affinity_timeout {
            out.push(format!(
                "affinity {:?} in the kernel, {:?} desired",
                kernel.affinity, self.desired.affinity_timeout
            ));
        }
        out
    }
}

/// Adds a line to `out` for each backend only one side has.
fn compare(want: &[SocketAddr], have: &[SocketAddr], what: &str, out: &mut Vec<String>) {
    let want: BTreeSet<_> = want.iter().collect();
    let have: BTreeSet<_> = have.iter().collect();
    for b in want.difference(&have) {
        out.push(format!("{what} {b} missing from the kernel"));
    }
    for b in have.difference(&want) {
        out.push(format!("{what} {b} in the kernel but not desired"));
    }
}

/// The whole report: per service, then frontends no service claims.
#[derive(Debug, Clone, Default)]
pub struct Explanation {
    /// `(namespace/name, frontends)` per proxied service.
    pub services: Vec<(String, Vec<FrontendReport>)>,
    /// Kernel frontends that no service in the view accounts for.
    pub orphans: Vec<(Frontend, Vec<SocketAddr>)>,
}

impl Explanation {
    /// Number of differences found (0 means the kernel matches the view).
    pub fn problem_count(&self) -> usize {
        self.services
            .iter()
            .flat_map(|(_, f)| f)
            .map(|f| f.problems().len())
            .sum::<usize>()
            + self.orphans.len()
    }
}

/// Compares the kernel with the view for `node`; `only` limits the report to
/// one `namespace/name`.
pub fn explain(
    snapshot: &ClusterSnapshot,
    node: &str,
    kernel: &KernelState,
    only: Option<&str>,
) -> Explanation {
    let mut out = Explanation::default();
    let mut claimed = BTreeSet::new();
    for (key, svc) in snapshot.services() {
        let name = format!("{}/{}", key.namespace.as_deref().unwrap_or(""), key.name);
        let frontends = service_frontends(snapshot, key, svc, node);
        claimed.extend(frontends.iter().map(|(f, _)| *f));
        if only.is_some_and(|o| o != name) || frontends.is_empty() {
            continue;
        }
        let reports = frontends
            .into_iter()
            .map(|(frontend, desired)| FrontendReport {
                frontend,
                kernel: kernel.frontends.get(&frontend).map(|k| {
                    let sorted = |mut b: Vec<SocketAddr>| {
                        b.sort();
                        b
                    };
                    KernelView {
                        backends: sorted(kernel.backend_addrs(&frontend)),
                        external_backends: sorted(kernel.external_backend_addrs(&frontend)),
                        affinity: k.affinity_timeout,
                    }
                }),
                desired,
            })
            .collect();
        out.services.push((name, reports));
    }
    if only.is_none() {
        for fe in kernel.frontends.keys().filter(|f| !claimed.contains(f)) {
            out.orphans.push((*fe, kernel.backend_addrs(fe)));
        }
    }
    out
}

fn proto(p: u8) -> &'static str {
    match p {
        PROTO_TCP => "TCP",
        PROTO_UDP => "UDP",
        _ => "?",
    }
}

fn addr(fe: &Frontend) -> String {
    SocketAddr::new(fe.vip, fe.port).to_string()
}

fn list(b: &[SocketAddr]) -> String {
    if b.is_empty() {
        "(none: connects are refused)".into()
    } else {
        b.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, frontends) in &self.services {
            writeln!(f, "{name}")?;
            for r in frontends {
                let affinity = r
                    .desired
                    .affinity_timeout
                    .map_or(String::new(), |t| format!("  affinity ClientIP {t}s"));
                writeln!(
                    f,
                    "  {} {}{affinity}",
                    proto(r.frontend.proto),
                    addr(&r.frontend)
                )?;
                match &r.kernel {
                    Some(k) => {
                        writeln!(f, "    kernel:  {}", list(&k.backends))?;
                        if r.desired.external_flags != 0 && k.external_backends != k.backends {
                            writeln!(f, "    external: {}", list(&k.external_backends))?;
                        }
                    }
                    None => writeln!(f, "    kernel:  (missing)")?,
                }
                let problems = r.problems();
                if problems.is_empty() {
                    writeln!(f, "    desired: same")?;
                } else {
                    writeln!(f, "    desired: {}", list(&r.desired.backends))?;
                    for p in problems {
                        writeln!(f, "    ! {p}")?;
                    }
                }
            }
        }
        for (fe, b) in &self.orphans {
            writeln!(
                f,
                "! {} {} is in the kernel but no service wants it: {}",
                proto(fe.proto),
                addr(fe),
                list(b)
            )?;
        }
        match self.problem_count() {
            0 => writeln!(f, "kernel maps match the cluster view"),
            n => writeln!(
                f,
                "{n} difference(s) between the kernel maps and the cluster view"
            ),
        }
    }
}
