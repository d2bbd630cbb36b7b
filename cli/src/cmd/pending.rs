//! Subcommands whose component has not landed yet. They say so clearly and
//! exit with status 2, instead of pretending to run.
use std::process::ExitCode;

/// Accepts any flags so the documented command lines parse today.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(component: &str, issue: &str, _args: Args) -> anyhow::Result<ExitCode> {
    eprintln!(
        "strait {component}: not available yet in this build (tracked in issue {issue}). \
         `strait echo` and the test suite (`scripts/test`) work today."
    );
    Ok(ExitCode::from(2))
}
