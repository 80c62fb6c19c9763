//! `pyrpc`: a command-line client for pyrpc servers (Rust or Python).
//!
//! ```text
//! pyrpc ping    ADDRESS
//! pyrpc call    ADDRESS METHOD [ARG ...] [--kw NAME=VALUE ...] [--timeout S] [--nb [--tick S]] [--repr]
//! pyrpc methods ADDRESS
//! pyrpc stats   ADDRESS [--json]
//! ```
//!
//! Arguments and results are JSON, with one-key tagged objects for the
//! Python shapes JSON lacks (`{"$tuple": [..]}`, `{"$bytes": "base64"}`,
//! `{"$int": "digits"}`, ...; see `pyrpc call --help` and
//! `docs/decisions/0004-cli-json-encoding.md`). Exit codes tell failures
//! apart: 1 remote exception (traceback on stderr), 2 usage, 3 timeout,
//! 4 unreachable (or TLS failed), 5 protocol error. `--tls-ca FILE` (or
//! `--tls` for the system's roots), `--tls-cert`/`--tls-key` and
//! `--tls-server-name` connect with TLS.
//!
//! # Layout
//!
//! * `lib.rs` — the command line (clap), running a command, exit codes:
//!   [`run`], the one implementation of the command.
//! * `main.rs` — the `pyrpc` binary: [`run`] on the process's arguments.
//! * `json.rs` — JSON <-> `Value`.
//!
//! The Python package runs the same [`run`] for `python -m pyrpc` and its
//! `pyrpc` console script, so both commands behave alike.
//!
//! Install with `cargo install --path crates/pyrpc-cli`.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pyrpc_client::blocking::Client;
use pyrpc_client::{CallError, CallOptions, ClientConfig};
use pyrpc_proto::{Args, Value};
use pyrpc_transport::Address;

mod json;

/// Exit code: the remote method raised, or the server refused the request.
const EXIT_REMOTE: u8 = 1;
/// Exit code: bad command line or argument (clap uses 2 too).
const EXIT_USAGE: u8 = 2;
/// Exit code: a timeout passed (connect, send, reply, non-blocking).
const EXIT_TIMEOUT: u8 = 3;
/// Exit code: the server could not be reached, or the connection dropped.
const EXIT_UNREACHABLE: u8 = 4;
/// Exit code: the server broke the protocol, or a value could not be read.
const EXIT_PROTOCOL: u8 = 5;

const ADDRESS_HELP: &str =
    "Server address: HOST:PORT, tcp://HOST:PORT, unix:/PATH or a path containing '/'";

const EXAMPLES: &str = "\
EXAMPLES:
  pyrpc ping 127.0.0.1:50300
  pyrpc call 127.0.0.1:50300 echo 1 '\"foo\"' --kw bar='[1, 2]'
  pyrpc call /tmp/echo_server_socket echo '{\"$tuple\": [1, 2]}' --repr
  pyrpc call 127.0.0.1:50300 long_computation --nb --tick 0.5 --timeout 600
  pyrpc methods 127.0.0.1:50300
  pyrpc stats 127.0.0.1:50300
  pyrpc ping localhost:50300 --tls-ca ca.pem
  pyrpc call localhost:50300 echo 1 --tls-ca ca.pem --tls-cert client.pem --tls-key client.key

EXIT CODES:
  0 ok, 1 remote exception (traceback on stderr), 2 usage, 3 timeout,
  4 unreachable (no server, connection lost, TLS failed), 5 protocol error";

/// Call pyrpc servers from the command line.
#[derive(Parser, Debug)]
#[command(name = "pyrpc", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(clap::Args, Debug)]
struct Common {
    #[arg(help = ADDRESS_HELP)]
    address: String,
    /// Give up after S seconds (connecting included).
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    timeout: f64,
    /// Read the shared secret of a server that requires authentication from
    /// this environment variable.
    #[arg(long, value_name = "VAR")]
    secret_env: Option<String>,
    /// Connect with TLS, verifying the server against this CA bundle (PEM).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// Connect with TLS, verifying the server against the system's root
    /// certificates.
    #[arg(long, conflicts_with = "tls_ca")]
    tls: bool,
    /// A client certificate chain (PEM) for servers that require one
    /// (mutual TLS); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Check the server's certificate against this name instead of the
    /// address's host.
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
}

impl Common {
    /// The TLS settings, if any TLS flag is given.
    fn tls(&self) -> Result<Option<pyrpc_transport::ClientTls>, Failure> {
        let on = self.tls
            || self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_server_name.is_some();
        if !on {
            return Ok(None);
        }
        let tls = pyrpc_transport::ClientTls::from_pem_files(
            self.tls_ca.as_deref(),
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
        )
        .map_err(|e| Failure::usage(format!("error: {e}")))?;
        Ok(Some(match &self.tls_server_name {
            Some(name) => tls.with_server_name(name.clone()),
            None => tls,
        }))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check that the server answers; prints the round trip time.
    Ping {
        #[command(flatten)]
        common: Common,
    },
    /// Call METHOD with JSON arguments and print the result as JSON.
    #[command(after_help = json::HELP, allow_negative_numbers = true)]
    Call {
        #[command(flatten)]
        common: Common,
        /// The method to call.
        method: String,
        /// Positional arguments, one JSON value each (quote strings: '"text"').
        args: Vec<String>,
        /// A keyword argument, NAME=JSON; repeat for more.
        #[arg(long = "kw", value_name = "NAME=VALUE")]
        kwargs: Vec<String>,
        /// Call non-blocking: submit, then poll for the result.
        #[arg(long)]
        nb: bool,
        /// With --nb: poll every S seconds.
        #[arg(long, value_name = "S", requires = "nb")]
        tick: Option<f64>,
        /// Print the result as a Python literal instead of JSON.
        #[arg(long)]
        repr: bool,
    },
    /// List the server's callable methods with their signatures and docstrings.
    Methods {
        #[command(flatten)]
        common: Common,
    },
    /// Show the server's statistics: calls, errors, in flight, latency.
    Stats {
        #[command(flatten)]
        common: Common,
        /// Print them as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// A failure, with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        let code = match &e {
            CallError::Remote(_) => EXIT_REMOTE,
            CallError::Timeout { .. } => EXIT_TIMEOUT,
            CallError::NoSocket { .. } | CallError::Closed | CallError::Tls { .. } => {
                EXIT_UNREACHABLE
            }
            _ => EXIT_PROTOCOL,
        };
        let message = match &e {
            CallError::Remote(r) if !r.traceback.is_empty() => {
                // Python prints the traceback, then the exception.
                let tb = r.traceback.trim_end();
                if tb.ends_with(&r.to_string()) {
                    tb.to_owned()
                } else {
                    format!("{tb}\n{r}")
                }
            }
            CallError::Remote(r) => r.to_string(),
            other => format!("error: {}", pyrpc_proto::Report(other)),
        };
        Failure { code, message }
    }
}

fn seconds(what: &str, s: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Failure::usage(format!("error: {what} must be a number of seconds >= 0")))
}

fn client(common: &Common) -> Result<Client, Failure> {
    let addr: Address = common
        .address
        .parse()
        .map_err(|e| Failure::usage(format!("error: {e}")))?;
    let timeout = seconds("--timeout", common.timeout)?;
    let mut config = ClientConfig {
        call_timeout: Some(timeout),
        socket_connect_timeout: timeout,
        name: concat!("pyrpc-cli/", env!("CARGO_PKG_VERSION")).to_owned(),
        tls: common.tls()?,
        ..ClientConfig::default()
    };
    if let Some(var) = &common.secret_env {
        let secret = std::env::var_os(var).ok_or_else(|| {
            Failure::usage(format!("error: environment variable {var} is not set"))
        })?;
        config.secret = Some(pyrpc_proto::auth::Secret::new(
            secret.to_string_lossy().into_owned().into_bytes(),
        ));
    }
    Client::with_config(addr, config).map_err(|e| Failure {
        code: EXIT_PROTOCOL,
        message: format!("error: cannot start the client runtime: {e}"),
    })
}

fn parse_arg(what: &str, text: &str) -> Result<Value, Failure> {
    json::parse(text).map_err(|e| {
        Failure::usage(format!(
            "error: {what} is not a JSON value: {e}\n(quote strings: '\"text\"'; see pyrpc call --help)"
        ))
    })
}

fn execute(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Ping { common } => {
            let c = client(&common)?;
            let start = std::time::Instant::now();
            c.ping()?;
            println!("ok {:.1} ms", start.elapsed().as_secs_f64() * 1000.0);
        }
        Command::Call {
            common,
            method,
            args,
            kwargs,
            nb,
            tick,
            repr,
        } => {
            let mut call_args = Args::new();
            for (i, a) in args.iter().enumerate() {
                call_args = call_args.arg(parse_arg(&format!("argument {}", i + 1), a)?);
            }
            for kw in &kwargs {
                let (name, value) = kw.split_once('=').ok_or_else(|| {
                    Failure::usage(format!("error: --kw {kw:?} is not NAME=VALUE"))
                })?;
                if call_args.kwarg_value(name).is_some() {
                    return Err(Failure::usage(format!(
                        "error: keyword argument {name:?} given twice"
                    )));
                }
                call_args = call_args.kwarg(name, parse_arg(&format!("--kw {name}"), value)?);
            }
            let c = client(&common)?;
            let result = if nb {
                let opts = CallOptions {
                    nb_fetch_tick: tick.map(|t| seconds("--tick", t)).transpose()?,
                    ..CallOptions::default()
                };
                c.nb_call_with(&method, call_args, &opts)?
            } else {
                c.call(&method, call_args)?
            };
            if repr {
                println!("{result}");
            } else {
                println!("{}", json::to_json(&result));
            }
        }
        Command::Methods { common } => {
            let c = client(&common)?;
            for m in c.list_methods()? {
                println!("{m}");
                if let Some(doc) = &m.doc {
                    for line in doc.trim().lines() {
                        println!("    {}", line.trim_end());
                    }
                }
            }
        }
        Command::Stats { common, json } => {
            let c = client(&common)?;
            let s = c.stats()?;
            let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            if json {
                let obj = serde_json::json!({
                    "calls": s.calls,
                    "errors": s.errors,
                    "in_flight": s.in_flight,
                    "kept_results": s.kept_results,
                    "connections": s.connections,
                    "uptime_ms": u64::try_from(s.uptime.as_millis()).unwrap_or(u64::MAX),
                    "latency_us": {
                        "p50": us(s.latency.p50),
                        "p90": us(s.latency.p90),
                        "p99": us(s.latency.p99),
                        "max": us(s.latency.max),
                    },
                });
                println!("{obj}");
            } else {
                println!("calls         {}", s.calls);
                println!("errors        {}", s.errors);
                println!("in flight     {}", s.in_flight);
                println!("kept results  {}", s.kept_results);
                println!("connections   {}", s.connections);
                println!("uptime        {:.1} s", s.uptime.as_secs_f64());
                println!(
                    "latency       p50 {} us, p90 {} us, p99 {} us, max {} us",
                    us(s.latency.p50),
                    us(s.latency.p90),
                    us(s.latency.p99),
                    us(s.latency.max)
                );
            }
        }
    }
    Ok(())
}

/// Runs the `pyrpc` command with `argv` (the program name first, as in
/// `std::env::args_os()`): prints to stdout and stderr and returns the exit
/// code (0 ok, 1 remote exception, 2 usage, 3 timeout, 4 unreachable, 5
/// protocol error; `--help` and `--version` return 0).
///
/// # Examples
///
/// ```
/// // Not an address: a usage error, said on stderr.
/// assert_eq!(pyrpc_cli::run(["pyrpc", "ping", "http://example.com:1"]), 2);
/// assert_eq!(pyrpc_cli::run(["pyrpc", "--version"]), 0);
/// ```
pub fn run<I, T>(argv: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let code = match Cli::try_parse_from(argv) {
        // --help, --version (exit 0) or a usage error (exit 2), printed as
        // clap prints them.
        Err(e) => {
            // Nothing more to tell if the terminal is gone.
            let _ = e.print();
            u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE)
        }
        Ok(cli) => match execute(cli) {
            Ok(()) => 0,
            Err(f) => {
                eprintln!("{}", f.message);
                f.code
            }
        },
    };
    // The Python package calls this in a process that goes on running.
    let _ = std::io::stdout().flush();
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn errors_map_to_distinct_exit_codes() {
        let code = |e: CallError| Failure::from(e).code;
        assert_eq!(
            code(CallError::Remote(pyrpc_proto::RemoteError::no_such_method(
                "m"
            ))),
            1
        );
        assert_eq!(
            code(CallError::Timeout {
                stage: pyrpc_client::TimeoutStage::Reply
            }),
            3
        );
        assert_eq!(code(CallError::Closed), 4);
        assert_eq!(
            code(CallError::Protocol(pyrpc_client::ProtocolError::NoOutcome)),
            5
        );
    }
}
