//! The `pyrpc` command: [`pyrpc_cli::run`] on the process's arguments.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(pyrpc_cli::run(std::env::args_os()))
}
