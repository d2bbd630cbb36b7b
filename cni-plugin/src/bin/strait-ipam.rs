//! `strait-ipam`: the built-in IPAM of strait-cni as a CNI IPAM plugin of
//! its own, exec'd by an interface plugin (such as the reference `bridge`)
//! with `"ipam": {"type": "strait-ipam", ...}`. Same store, same logic.

use std::process::ExitCode;

fn main() -> ExitCode {
    strait_cni::cli::main(strait_cni::ipam::plugin::execute)
}
