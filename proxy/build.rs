//! Builds the eBPF programs (nightly, bpfel-unknown-none, build-std=core) and
//! leaves the object in OUT_DIR, where `object.rs` embeds it. The loader can
//! therefore never run against an object built from other sources.
use std::{path::PathBuf, process::Command};

const NIGHTLY: &str = "nightly";
const EBPF_PACKAGE: &str = "strait-ebpf";

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../ebpf/programs").canonicalize()?;
    let common_dir = manifest_dir.join("../ebpf/common").canonicalize()?;
    println!("cargo:rerun-if-changed={}", common_dir.display());
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");

    if std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        // Leave an empty object so the crate compiles; loading reports it.
        let out = PathBuf::from(std::env::var("OUT_DIR")?).join("strait-sock");
        if !out.exists() {
            std::fs::write(out, [])?;
        }
        println!(
            "cargo:warning=AYA_BUILD_SKIP is set: the eBPF object is empty and cannot be loaded"
        );
        return Ok(());
    }

    if let Err(e) = preflight() {
        // A plain message, not an anyhow backtrace: this is an install problem.
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("eBPF crate path is not UTF-8: {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: EBPF_PACKAGE,
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(NIGHTLY),
    )
}

/// Fails early with an actionable message instead of a wall of linker errors.
fn preflight() -> anyhow::Result<()> {
    let fix =
        "run `scripts/setup` (it installs bpf-linker against LLVM 22 and rust-src for nightly)";
    let linker = Command::new("bpf-linker").arg("--version").output();
    if !linker.is_ok_and(|o| o.status.success()) {
        anyhow::bail!("bpf-linker is not on PATH; the eBPF programs cannot be linked: {fix}");
    }
    let rustc = Command::new("rustup")
        .args(["run", NIGHTLY, "rustc", "--print", "sysroot"])
        .output();
    let sysroot = match rustc {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => anyhow::bail!(
            "the `{NIGHTLY}` Rust toolchain is missing; the eBPF programs need it: {fix}"
        ),
    };
    if !sysroot.join("lib/rustlib/src/rust/library/core").exists() {
        anyhow::bail!(
            "rust-src is not installed for `{NIGHTLY}` (needed for -Z build-std=core): {fix}"
        );
    }
    Ok(())
}
