//! `strait-cni`: exec'd by the container runtime. Wires the process's
//! environment, stdin, stdout and exit code to [`strait_cni::run`].

use std::process::ExitCode;

fn main() -> ExitCode {
    strait_cni::cli::main(strait_cni::commands::execute)
}
