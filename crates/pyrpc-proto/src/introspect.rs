//! [`MethodInfo`] (the answer to `ListMethods`) and [`ServerStats`] (the
//! answer to `Stats`): what a server says about itself.

use std::time::Duration;

use crate::wire;

/// One callable method of a server, as `ListMethods` reports it.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::MethodInfo;
///
/// let m = MethodInfo::new("echo").signature("(*args, **kwargs)").doc("Returns its arguments.");
/// assert_eq!(m.to_string(), "echo(*args, **kwargs)");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodInfo {
    /// The name to call it by.
    pub name: String,
    /// Its parameters as Python writes them, e.g. `"(a, b=1, *args)"`, when
    /// the server knows them (a Python server does).
    pub signature: Option<String>,
    /// Its docstring, when it has one.
    pub doc: Option<String>,
}

impl MethodInfo {
    /// A method known by name only.
    pub fn new(name: impl Into<String>) -> Self {
        MethodInfo {
            name: name.into(),
            signature: None,
            doc: None,
        }
    }

    /// Sets the signature.
    pub fn signature(mut self, signature: impl Into<String>) -> Self {
        self.signature = Some(signature.into());
        self
    }

    /// Sets the docstring.
    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.doc = Some(doc.into());
        self
    }
}

impl std::fmt::Display for MethodInfo {
    /// `name(signature)`, or `name(...)` when the signature is unknown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.signature {
            Some(s) => write!(f, "{}{s}", self.name),
            None => write!(f, "{}(...)", self.name),
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl From<wire::MethodInfo> for MethodInfo {
    fn from(m: wire::MethodInfo) -> Self {
        MethodInfo {
            name: m.name,
            signature: non_empty(m.signature),
            doc: non_empty(m.doc),
        }
    }
}

impl From<MethodInfo> for wire::MethodInfo {
    fn from(m: MethodInfo) -> Self {
        wire::MethodInfo {
            name: m.name,
            signature: m.signature.unwrap_or_default(),
            doc: m.doc.unwrap_or_default(),
        }
    }
}

/// A server's statistics, as `Stats` reports them. Counts cover every `Call`
/// and `Submit` with an outcome, refused ones included, except the built-ins
/// (docs/PROTOCOL.md, "Introspection and statistics", has the whole rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Calls with an outcome (a value or an error).
    pub calls: u64,
    /// Of those, calls that ended in an error of any kind.
    pub errors: u64,
    /// Calls running now.
    pub in_flight: u64,
    /// Non-blocking calls kept (running, or finished and not yet released).
    pub kept_results: u64,
    /// Open connections.
    pub connections: u64,
    /// Time since the server started.
    pub uptime: Duration,
    /// Latency percentiles of those calls since the server started, from
    /// the request's read to the outcome.
    pub latency: Latency,
}

/// Latency percentiles (from a log-bucketed histogram, exact to within
/// 12.5%); all zero before the first call finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latency {
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The slowest call.
    pub max: Duration,
}

impl Latency {
    /// Percentiles from their values.
    pub fn new(p50: Duration, p90: Duration, p99: Duration, max: Duration) -> Self {
        Latency { p50, p90, p99, max }
    }
}

impl ServerStats {
    /// Statistics from their values; see the fields.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        calls: u64,
        errors: u64,
        in_flight: u64,
        kept_results: u64,
        connections: u64,
        uptime: Duration,
        latency: Latency,
    ) -> Self {
        ServerStats {
            calls,
            errors,
            in_flight,
            kept_results,
            connections,
            uptime,
            latency,
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl From<wire::ServerStats> for ServerStats {
    fn from(s: wire::ServerStats) -> Self {
        ServerStats {
            calls: s.calls,
            errors: s.errors,
            in_flight: s.in_flight,
            kept_results: s.kept_results,
            connections: s.connections,
            uptime: Duration::from_millis(s.uptime_ms),
            latency: Latency {
                p50: Duration::from_micros(s.latency_p50_us),
                p90: Duration::from_micros(s.latency_p90_us),
                p99: Duration::from_micros(s.latency_p99_us),
                max: Duration::from_micros(s.latency_max_us),
            },
        }
    }
}

impl From<ServerStats> for wire::ServerStats {
    fn from(s: ServerStats) -> Self {
        wire::ServerStats {
            calls: s.calls,
            errors: s.errors,
            in_flight: s.in_flight,
            kept_results: s.kept_results,
            connections: s.connections,
            uptime_ms: u64::try_from(s.uptime.as_millis()).unwrap_or(u64::MAX),
            latency_p50_us: micros(s.latency.p50),
            latency_p90_us: micros(s.latency.p90),
            latency_p99_us: micros(s.latency.p99),
            latency_max_us: micros(s.latency.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_info_round_trips_and_empty_means_unknown() {
        let m = MethodInfo::new("f").signature("(a)").doc("d");
        assert_eq!(MethodInfo::from(wire::MethodInfo::from(m.clone())), m);
        let bare = MethodInfo::from(wire::MethodInfo {
            name: "g".into(),
            ..Default::default()
        });
        assert_eq!(bare, MethodInfo::new("g"));
        assert_eq!(bare.to_string(), "g(...)");
    }

    #[test]
    fn stats_round_trip_at_wire_resolution() {
        let s = ServerStats::new(
            10,
            2,
            1,
            3,
            4,
            Duration::from_millis(1500),
            Latency::new(
                Duration::from_micros(20),
                Duration::from_micros(40),
                Duration::from_micros(90),
                Duration::from_millis(3),
            ),
        );
        assert_eq!(ServerStats::from(wire::ServerStats::from(s.clone())), s);
    }
}
