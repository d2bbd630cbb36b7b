//! Writing the layout into the kernel with kube-proxy's own tools: one
//! `iptables-restore --noflush` (after one `iptables-save` that says which
//! of our chains and jumps exist) or one `nft -f` transaction (after one
//! `nft -j list table ip kube-proxy`). Only our chains, jumps and table are
//! ever named; everything else in the tables stays as it is.
use std::io::Write as _;
use std::process::{Command, Stdio};

use super::model::{Options, ServicePort};
use super::nftables::{self, NftExisting, TABLE};
use super::saved::Existing;

/// Which iptables binaries write the iptables layout.
///
/// `Nft` (the default) is Debian's `iptables` (1.8.9, nf_tables backend):
/// no legacy xtables kernel modules needed, and `nft list ruleset` shows
/// the result next to the nftables mode's. `Legacy` is the x_tables
/// backend the proxy benchmark measures, whose restore stays linear in the
/// chain count. Inside one network namespace either works; do not mix both
/// on one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IptablesBackend {
    /// `iptables-nft-restore` / `iptables-nft-save`.
    #[default]
    Nft,
    /// `iptables-legacy-restore` / `iptables-legacy-save`.
    Legacy,
}

impl IptablesBackend {
    /// The restore binary.
    pub fn restore(self) -> &'static str {
        match self {
            IptablesBackend::Nft => "iptables-nft-restore",
            IptablesBackend::Legacy => "iptables-legacy-restore",
        }
    }

    /// The save binary.
    pub fn save(self) -> &'static str {
        match self {
            IptablesBackend::Nft => "iptables-nft-save",
            IptablesBackend::Legacy => "iptables-legacy-save",
        }
    }
}

/// Which kube-proxy mode the rules follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RulesMode {
    /// kube-proxy's iptables mode.
    Iptables(IptablesBackend),
    /// kube-proxy's nftables mode.
    Nftables,
}

impl RulesMode {
    /// `iptables` or `nftables`.
    pub fn name(self) -> &'static str {
        match self {
            RulesMode::Iptables(_) => "iptables",
            RulesMode::Nftables => "nftables",
        }
    }
}

/// Why writing or reading the rules failed. Each message names the command
/// and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The program could not be started.
    #[error(
        "cannot run {program}: {source}; install it (Debian: apt-get install -y {package}) or use --mode ebpf"
    )]
    Spawn {
        /// The program.
        program: &'static str,
        /// The Debian package that has it.
        package: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("{program} failed ({status}): {stderr}{culprit}; {hint}")]
    Failed {
        /// The command line.
        program: String,
        /// Its exit status.
        status: String,
        /// What it printed (shortened).
        stderr: String,
        /// The input line it names, if any.
        culprit: String,
        /// What to check.
        hint: &'static str,
    },
    /// Its output could not be read.
    #[error("cannot read the output of {program}: {detail}")]
    Parse {
        /// The program.
        program: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// What one write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Service ports written.
    pub service_ports: usize,
    /// Stale chains (and affinity sets) deleted.
    pub stale: usize,
    /// Size of the restore input or transaction.
    pub bytes: usize,
}

const PRIVILEGE_HINT: &str = "the agent needs root (CAP_NET_ADMIN) in the node's network namespace";

fn package(program: &str) -> &'static str {
    if program.starts_with("iptables") {
        "iptables"
    } else {
        "nftables"
    }
}

/// Runs `program args`, feeding `input` on stdin: stdout, status, stderr.
fn run(
    program: &'static str,
    args: &[&str],
    input: Option<&str>,
) -> Result<(String, std::process::ExitStatus, String), RulesError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RulesError::Spawn {
            program,
            package: package(program),
            source,
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A failed write shows up as the program's own error below.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| RulesError::Spawn {
            program,
            package: package(program),
            source,
        })?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn failed(
    program: &str,
    args: &[&str],
    status: std::process::ExitStatus,
    stderr: &str,
    input: Option<&str>,
    hint: &'static str,
) -> RulesError {
    let mut short: String = stderr.trim().chars().take(1500).collect();
    if short.is_empty() {
        short = "no output".into();
    }
    // iptables-restore says "line N failed"; show that input line.
    let culprit = input
        .and_then(|text| {
            let n: usize = stderr
                .split("line ")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            text.lines()
                .nth(n.checked_sub(1)?)
                .map(|l| format!(" (input line {n}: {l})"))
        })
        .unwrap_or_default();
    RulesError::Failed {
        program: format!("{program} {}", args.join(" ")),
        status: status.to_string(),
        stderr: short,
        culprit,
        hint,
    }
}

fn checked(
    program: &'static str,
    args: &[&str],
    input: Option<&str>,
    hint: &'static str,
) -> Result<String, RulesError> {
    let (stdout, status, stderr) = run(program, args, input)?;
    if status.success() {
        Ok(stdout)
    } else {
        Err(failed(program, args, status, &stderr, input, hint))
    }
}

/// Our iptables chains and jumps as they exist now.
pub fn read_iptables(backend: IptablesBackend) -> Result<Existing, RulesError> {
    let text = checked(backend.save(), &[], None, PRIVILEGE_HINT)?;
    Ok(Existing::parse_save(&text))
}

/// Our nftables table as it exists now (empty when there is none).
pub fn read_nftables() -> Result<NftExisting, RulesError> {
    let args = ["-j", "-t", "list", "table", "ip", TABLE];
    let (stdout, status, stderr) = run("nft", &args, None)?;
    if !status.success() {
        if stderr.contains("No such file or directory") {
            return Ok(NftExisting::default());
        }
        return Err(failed("nft", &args, status, &stderr, None, PRIVILEGE_HINT));
    }
    NftExisting::parse_json(&stdout).map_err(|detail| RulesError::Parse {
        program: "nft -j list table",
        detail,
    })
}

const RESTORE_HINT: &str = "the generated rules were refused; check that the kernel has the \
     xt_statistic, xt_recent, xt_comment, xt_addrtype and xt_conntrack matches and that we are root";
const NFT_HINT: &str = "the generated transaction was refused; check that the kernel has nf_tables \
     with nft_numgen, nft_fib and nft_nat and that we are root";

/// Makes the rules equal to `services`: one read, one atomic write.
pub fn sync(
    mode: RulesMode,
    services: &[ServicePort],
    opts: &Options,
) -> Result<SyncReport, RulesError> {
    let (input, stale) = match mode {
        RulesMode::Iptables(backend) => {
            let existing = read_iptables(backend)?;
            let active = super::iptables::nat_chains(services, opts);
            let stale = existing.nat_chains.difference(&active).count();
            let input = super::iptables::restore(services, opts, &existing, None);
            let args = ["--noflush", "-w", "5"];
            checked(backend.restore(), &args, Some(&input), RESTORE_HINT)?;
            (input, stale)
        }
        RulesMode::Nftables => {
            let existing = read_nftables()?;
            let input = nftables::full(services, opts, &existing);
            let stale = input.lines().filter(|l| l.starts_with("delete ")).count();
            checked("nft", &["-f", "-"], Some(&input), NFT_HINT)?;
            (input, stale)
        }
    };
    Ok(SyncReport {
        service_ports: services.len(),
        stale,
        bytes: input.len(),
    })
}

/// Removes every chain, jump and table of ours; returns how many objects
/// (chains and jumps, or the table) went.
pub fn cleanup(mode: RulesMode) -> Result<usize, RulesError> {
    match mode {
        RulesMode::Iptables(backend) => {
            let existing = read_iptables(backend)?;
            let input = super::iptables::cleanup(&existing);
            if !input.is_empty() {
                checked(
                    backend.restore(),
                    &["--noflush", "-w", "5"],
                    Some(&input),
                    RESTORE_HINT,
                )?;
            }
            Ok(existing.filter_chains.len() + existing.nat_chains.len() + existing.jumps.len())
        }
        RulesMode::Nftables => {
            let existing = read_nftables()?;
            let input = nftables::cleanup(&existing);
            if !input.is_empty() {
                checked("nft", &["-f", "-"], Some(&input), NFT_HINT)?;
            }
            Ok(usize::from(existing.table))
        }
    }
}
