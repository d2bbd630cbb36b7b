//! `strait echo`: the test backend.
use std::{net::SocketAddr, process::ExitCode};

use anyhow::Context;
use strait_echo::{EchoConfig, EchoServer};

/// Flags of `strait echo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name reported in every answer (the pod name in the lab).
    #[arg(long, env = "STRAIT_ECHO_NAME")]
    name: String,
    /// Address to serve TCP, UDP and HTTP on; repeat for several.
    #[arg(long, default_values = ["0.0.0.0:8080"])]
    listen: Vec<SocketAddr>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        let server = EchoServer::bind(&EchoConfig {
            name: args.name.clone(),
            listen: args.listen,
        })
        .await?;
        for addr in server.local_addrs() {
            tracing::info!(name = %args.name, %addr, "echo serving tcp, udp and http");
        }
        tokio::select! {
            () = server.run() => {}
            r = tokio::signal::ctrl_c() => { r.context("waiting for ctrl-c")?; }
        }
        Ok(ExitCode::SUCCESS)
    })
}
