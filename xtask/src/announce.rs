//! Servers started on port 0 (or a Unix socket) that say where they listen.
//!
//! Every server the demo and the interop test start prints one line
//! `listening on ADDRESS` to stdout, flushed, as soon as it is bound, with
//! the address it actually bound (`127.0.0.1:PORT` with the port the OS
//! chose, or `unix:/path`). [`spawn_announced`] starts such a server, copies
//! its stdout on to where its output goes, and waits for that line: no port
//! is picked free and released beforehand, so no other process can take it
//! in between.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::util::{describe, KillOnDrop};

/// What starts the line a server prints once it is bound.
pub(crate) const PREFIX: &str = "listening on ";

/// Where a server's output goes.
pub(crate) enum Output<'a> {
    /// Our own stdout and stderr (the demo shows it).
    Inherit,
    /// A log file, stdout and stderr both (the interop test's cells).
    Log(&'a std::path::Path),
}

/// A started server that said where it listens. Dropping it kills the
/// process (if still running) and waits for its output to be copied.
pub(crate) struct Announced {
    /// The process (killed and reaped when dropped).
    pub(crate) proc: KillOnDrop,
    /// The address the server bound, as it printed it.
    pub(crate) address: String,
    /// Copies the server's stdout until it closes.
    copier: Option<JoinHandle<()>>,
}

impl Drop for Announced {
    fn drop(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
        // The process is gone, so its stdout is closed and the copier ends
        // (the servers started here have no children that could keep it).
        if let Some(copier) = self.copier.take() {
            let _ = copier.join();
        }
    }
}

/// The address in a line `listening on ADDRESS`, or `None` for any other
/// line. An address with port 0 is an error: the server printed what it was
/// asked for, not what it bound.
pub(crate) fn parse_line(line: &str) -> Option<Result<String>> {
    let rest = line.trim_end().strip_prefix(PREFIX.trim_end())?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let address = rest.trim();
    Some(
        if address.is_empty() || address.contains(char::is_whitespace) {
            Err(anyhow::anyhow!("no address in the line {line:?}"))
        } else if !address.starts_with("unix:") && address.ends_with(":0") {
            Err(anyhow::anyhow!(
                "the server announced port 0 ({line:?}), not the port it bound"
            ))
        } else {
            Ok(address.to_owned())
        },
    )
}

/// Starts `cmd` (a server asked to bind port 0 or a Unix socket) and waits up
/// to `limit` for its `listening on ADDRESS` line. Fails, with the server's
/// output so far, if the process exits first, never says so in time, or
/// says so wrongly.
pub(crate) fn spawn_announced(
    cmd: &mut Command,
    output: Output<'_>,
    limit: Duration,
) -> Result<Announced> {
    let (mut sink, log): (Box<dyn Write + Send>, _) = match output {
        Output::Inherit => {
            println!("$ {} &", describe(cmd));
            cmd.stderr(Stdio::inherit());
            (Box::new(std::io::stdout()), None)
        }
        Output::Log(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            cmd.stderr(file.try_clone()?);
            (Box::new(file), Some(path))
        }
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    let stdout = child.stdout.take().context("the server's stdout")?;
    let (tx, rx) = mpsc::channel();
    let copier = std::thread::spawn(move || {
        // The first lines also go to the waiting side, until it has its
        // address; the copying goes on until the server's stdout closes, so
        // the server never blocks on a full pipe.
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(sink, "{line}");
            let _ = sink.flush();
            if let Some(found) = parse_line(&line) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(found);
                }
            }
        }
    });
    let mut server = Announced {
        proc: KillOnDrop(child),
        address: String::new(),
        copier: Some(copier),
    };
    let what = describe(cmd);
    let why = |reason: String| {
        let shown = match log {
            Some(path) => format!(
                "{reason}\n--- its output ({}) ---\n{}",
                path.display(),
                std::fs::read_to_string(path).unwrap_or_default()
            ),
            None => format!("{reason} (its output is above)"),
        };
        anyhow::anyhow!("`{what}`: {shown}")
    };
    let start = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Ok(address)) => {
                server.address = address;
                return Ok(server);
            }
            Ok(Err(e)) => return Err(why(format!("{e:#}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Its stdout closed without the line: wait below for the exit.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(20))
            }
        }
        if let Some(status) = server.proc.0.try_wait()? {
            // Let the copier write out what the server printed last.
            drop(rx);
            if let Some(copier) = server.copier.take() {
                let _ = copier.join();
            }
            return Err(why(format!(
                "the server exited ({status}) without saying where it listens \
                 (a line `{PREFIX}ADDRESS`)"
            )));
        }
        if start.elapsed() > limit {
            return Err(why(format!(
                "the server did not say where it listens (a line `{PREFIX}ADDRESS`) \
                 within {limit:?}"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_and_unix_addresses() {
        let tcp = parse_line("listening on 127.0.0.1:40123\n")
            .unwrap()
            .unwrap();
        assert_eq!(tcp, "127.0.0.1:40123");
        let v6 = parse_line("listening on [::1]:5").unwrap().unwrap();
        assert_eq!(v6, "[::1]:5");
        let unix = parse_line("listening on unix:/tmp/x/cell0.sock")
            .unwrap()
            .unwrap();
        assert_eq!(unix, "unix:/tmp/x/cell0.sock");
    }

    #[test]
    fn other_lines_are_not_announcements() {
        for line in [
            "",
            "rust interop server starting",
            "2026-12-02T13:40:00Z INFO pyrpc.server: pyrpc server listening on 127.0.0.1:1",
            " listening on 127.0.0.1:1",
            "Listening on 127.0.0.1:1",
            "listening once",
        ] {
            assert!(parse_line(line).is_none(), "{line:?}");
        }
    }

    #[test]
    fn port_zero_or_no_address_is_an_error() {
        for line in [
            "listening on 127.0.0.1:0",
            "listening on ",
            "listening on",
            "listening on 127.0.0.1:1 (Ctrl-C stops it)",
        ] {
            assert!(matches!(parse_line(line), Some(Err(_))), "{line:?}");
        }
    }

    #[test]
    fn a_server_that_exits_silently_is_reported_with_its_output() {
        let dir = crate::util::temp_dir("pyrpc-announce-test").unwrap();
        let log = dir.path().join("server.log");
        let err = spawn_announced(
            Command::new("sh").args(["-c", "echo starting; echo oops >&2; exit 3"]),
            Output::Log(&log),
            Duration::from_secs(20),
        )
        .err()
        .expect("a server that never says where it listens must fail");
        let text = format!("{err:#}");
        assert!(text.contains("exited"), "{text}");
        assert!(text.contains("starting") && text.contains("oops"), "{text}");
    }

    #[test]
    fn a_silent_server_times_out_and_is_killed() {
        let dir = crate::util::temp_dir("pyrpc-announce-test").unwrap();
        let log = dir.path().join("server.log");
        let start = Instant::now();
        let err = spawn_announced(
            Command::new("sleep").arg("30"),
            Output::Log(&log),
            Duration::from_millis(300),
        )
        .err()
        .expect("a server that stays silent must fail");
        assert!(format!("{err:#}").contains("within"), "{err:#}");
        // The failed start killed the process instead of waiting for it.
        assert!(start.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn the_announced_address_is_returned_and_output_kept() {
        let dir = crate::util::temp_dir("pyrpc-announce-test").unwrap();
        let log = dir.path().join("server.log");
        let mut server = spawn_announced(
            Command::new("sh").args([
                "-c",
                "echo hello; echo 'listening on 127.0.0.1:4242'; echo after; exec sleep 30",
            ]),
            Output::Log(&log),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(server.address, "127.0.0.1:4242");
        assert!(server.proc.0.try_wait().unwrap().is_none(), "still running");
        drop(server);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("hello\nlistening on 127.0.0.1:4242\n"),
            "{text}"
        );
        assert!(text.contains("after"), "{text}");
    }
}
