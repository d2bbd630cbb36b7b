//! `strait`: one thin binary for every long-running Strait component. It
//! parses arguments and calls the crates; the logic lives in them.
mod cmd;

use clap::Parser;

/// mimalloc instead of glibc malloc: the proxies allocate and free small
/// buffers per request from one thread per core, where glibc's arenas cost
/// about 4 % of the ingress proxy's CPU (perf under wrk).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cmd::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRAIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strait: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
