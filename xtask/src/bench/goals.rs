//! The goals: ratios of numbers measured in the same run, each judged
//! against its target.

use super::*;

/// One goal of issue 6, judged on this run's medians.
pub(super) struct Goal {
    pub(super) name: String,
    /// How the value was computed, with the numbers.
    pub(super) detail: String,
    /// The measured value (a ratio, or milliseconds) and its target.
    pub(super) value: Option<f64>,
    pub(super) target: f64,
    pub(super) higher_is_better: bool,
}

impl Goal {
    pub(super) fn met(&self) -> Option<bool> {
        let v = self.value?;
        Some(if self.higher_is_better {
            v >= self.target
        } else {
            v <= self.target
        })
    }

    /// measured / target, oriented so that >= 1 is met (for the chart).
    pub(super) fn score(&self) -> Option<f64> {
        let v = self.value?;
        Some(if self.higher_is_better {
            v / self.target
        } else if v <= 0.0 {
            10.0
        } else {
            self.target / v
        })
    }
}

pub(super) fn goals(summaries: &[Summary], plan: &Plan) -> Vec<Goal> {
    let find = |id: &str, t: Transport| {
        summaries
            .iter()
            .find(|s| s.case.id == id && s.case.transport == t && s.ok > 0)
    };
    let val = |id: &str, t: Transport, k: &str| find(id, t).and_then(|s| s.get(k));
    let mut out = Vec::new();
    // A ratio of two cases is taken within each repeat (the two ran a few
    // seconds apart) and the median of those is judged, so a burst of load
    // from elsewhere on the machine skews one pair, not the verdict.
    let paired = |a: (&str, &str), b: (&str, &str), t: Transport| -> (Option<f64>, String) {
        let (Some(sa), Some(sb)) = (find(a.0, t), find(b.0, t)) else {
            return (None, "did not run".into());
        };
        let ratios: Vec<f64> = sa
            .per_rep
            .iter()
            .zip(&sb.per_rep)
            .filter_map(|(x, y)| {
                let (x, y) = (x.as_ref()?.get(a.1)?, y.as_ref()?.get(b.1)?);
                (*y > 0.0).then(|| x / y)
            })
            .collect();
        let detail = format!(
            "{} {} / {} {}: per repeat {}; medians {} / {}",
            a.0,
            a.1,
            b.0,
            b.1,
            ratios
                .iter()
                .map(|r| fmt_num(*r))
                .collect::<Vec<_>>()
                .join(", "),
            sa.get(a.1).map_or("-".into(), fmt_num),
            sb.get(b.1).map_or("-".into(), fmt_num)
        );
        ((!ratios.is_empty()).then(|| median(ratios)), detail)
    };
    let mut ratio = |name: String, a: (&str, &str), b: (&str, &str), t: Transport, target: f64| {
        let (value, detail) = paired(a, b, t);
        out.push(Goal {
            name,
            detail,
            value,
            target,
            higher_is_better: true,
        });
    };
    for t in [Transport::Tcp, Transport::Unix] {
        let tn = t.name();
        ratio(
            format!("Rust seq >= 0.85x raw ({tn})"),
            ("rust-seq", "rate"),
            ("raw", "rate"),
            t,
            0.85,
        );
        ratio(
            format!("Rust seq >= 2x tonic ({tn})"),
            ("rust-seq", "rate"),
            ("tonic", "rate"),
            t,
            2.0,
        );
        // Issue 11's goal (issue 5 asked 0.7x).
        ratio(
            format!("Python seq >= 0.85x raw ({tn})"),
            ("py-seq", "rate"),
            ("raw", "rate"),
            t,
            0.85,
        );
        ratio(
            format!("Python seq >= 4x grpcio ({tn})"),
            ("py-seq", "rate"),
            ("grpcio", "rate"),
            t,
            4.0,
        );
        ratio(
            format!("Rust 64 in flight >= 4x seq ({tn})"),
            ("rust-inflight64", "rate"),
            ("rust-seq", "rate"),
            t,
            4.0,
        );
        ratio(
            format!("Python 8 threads >= 2x seq ({tn})"),
            ("py-threads8", "rate"),
            ("py-seq", "rate"),
            t,
            2.0,
        );
    }
    for t in [Transport::Tcp, Transport::Unix] {
        let tn = t.name();
        for (id, who) in [("rust-nb-fast", "Rust"), ("py-nb-fast", "Python")] {
            let (nb, echo) = (val(id, t, "p50_us"), val(id, t, "echo_p50_us"));
            out.push(Goal {
                name: format!("{who} nb_ fast p50 <= 3x echo p50 ({tn})"),
                detail: format!(
                    "nb p50 {} us / echo p50 {} us",
                    nb.map_or("-".into(), fmt_num),
                    echo.map_or("-".into(), fmt_num)
                ),
                value: nb.zip(echo).filter(|(_, e)| *e > 0.0).map(|(n, e)| n / e),
                target: 3.0,
                higher_is_better: false,
            });
        }
        for (id, who) in [("rust-nb-200ms", "Rust"), ("py-nb-200ms", "Python")] {
            let over = val(id, t, "overshoot_ms");
            out.push(Goal {
                name: format!("{who} nb 200 ms call (tick 1 s) done within 10 ms ({tn})"),
                detail: format!(
                    "worst of {} calls: {} ms after the 200 ms",
                    plan.nb_slow_count,
                    over.map_or("-".into(), fmt_num)
                ),
                value: over,
                target: 10.0,
                higher_is_better: false,
            });
        }
    }
    for t in [Transport::Tcp, Transport::Unix] {
        let tn = t.name();
        for size in plan.sizes {
            let mib = size / MIB;
            for (prefix, who) in [("rust-big", "Rust"), ("py-big", "Python")] {
                let id = format!("{prefix}-{mib}");
                let raw_id = format!("raw-bulk-{mib}");
                let (value, detail) = paired((&id, "mbps"), (&raw_id, "mbps"), t);
                out.push(Goal {
                    name: format!("{who} {mib} MiB return >= 0.7x raw MB/s ({tn})"),
                    detail,
                    value,
                    target: 0.7,
                    higher_is_better: true,
                });
                let payload_kb = size as f64 / 1024.0;
                for (side, peak, idle) in [
                    ("client", "rss_peak_kb", "rss_idle_kb"),
                    ("server", "server_peak_kb", "server_idle_kb"),
                ] {
                    let (p, i) = (val(&id, t, peak), val(&id, t, idle));
                    out.push(Goal {
                        name: format!(
                            "{who} {mib} MiB {side} peak RSS above idle <= 1.5x payload ({tn})"
                        ),
                        detail: format!(
                            "({} - {} MiB) / {} MiB",
                            p.map_or("-".into(), |v| fmt_num(v / 1024.0)),
                            i.map_or("-".into(), |v| fmt_num(v / 1024.0)),
                            mib
                        ),
                        value: p.zip(i).map(|(p, i)| (p - i) / payload_kb),
                        target: 1.5,
                        higher_is_better: false,
                    });
                }
            }
        }
    }
    for id in ["rust-conns", "py-conns"] {
        let s = find(id, Transport::Tcp);
        out.push(Goal {
            name: format!(
                "{} connections calling at once all succeed ({id})",
                plan.conns
            ),
            detail: s.map_or("did not run".into(), |s| {
                format!(
                    "{}/{} repeats ok; idle memory per connection: server {} KiB, client {} KiB",
                    s.ok,
                    s.runs,
                    s.get("server_kb_per_conn").map_or("-".into(), fmt_num),
                    s.get("client_kb_per_conn").map_or("-".into(), fmt_num)
                )
            }),
            value: s.map(|s| if s.ok == s.runs { 1.0 } else { 0.0 }),
            target: 1.0,
            higher_is_better: true,
        });
    }
    // "Bounded": at most 16 KiB per call in flight on either side, i.e. the
    // memory grows with the calls by a small constant and nothing else.
    let s = find("rust-nb-many", Transport::Tcp);
    let per_call = s.and_then(|s| {
        let n = s.get("in_flight")?;
        let client = s.get("rss_peak_kb")? - s.get("rss_idle_kb")?;
        let server = s.get("server_peak_kb")? - s.get("server_idle_kb")?;
        Some((client / n, server / n, s.ok == s.runs))
    });
    out.push(Goal {
        name: format!(
            "{} nb calls in flight, <= 16 KiB per call each side",
            plan.nb_many
        ),
        detail: per_call.map_or("did not run".into(), |(c, sv, all)| {
            format!(
                "all ok: {all}; peak above idle per call: client {} KiB, server {} KiB",
                fmt_num(c),
                fmt_num(sv)
            )
        }),
        value: per_call.map(|(c, sv, all)| if all { c.max(sv) } else { f64::INFINITY }),
        target: 16.0,
        higher_is_better: false,
    });
    // Issue 11: the Python server's CPU per echo call against a plain
    // Python ping-pong server's (both from the server process's counters).
    for t in [Transport::Tcp, Transport::Unix] {
        let (value, detail) = paired(
            ("py-seq", "server_cpu_us_per_call"),
            ("py-raw", "server_cpu_us_per_call"),
            t,
        );
        out.push(Goal {
            name: format!(
                "Python server CPU per echo call <= 1.5x raw Python's ({})",
                t.name()
            ),
            detail,
            value,
            target: 1.5,
            higher_is_better: false,
        });
    }
    tls_goals(summaries, plan, &mut out);
    out
}

/// Issue 13's goals: TLS against plain TCP, and the flood's p99.
pub(super) fn tls_goals(summaries: &[Summary], plan: &Plan, out: &mut Vec<Goal>) {
    let find = |id: &str, t: Transport| {
        summaries
            .iter()
            .find(|s| s.case.id == id && s.case.transport == t && s.ok > 0)
    };
    // Paired per repeat as in `goals`, across transports.
    let cross = |id: &str, key: &str| -> (Option<f64>, String) {
        let (Some(tls), Some(tcp)) = (find(id, Transport::Tls), find(id, Transport::Tcp)) else {
            return (None, "did not run".into());
        };
        let ratios: Vec<f64> = tls
            .per_rep
            .iter()
            .zip(&tcp.per_rep)
            .filter_map(|(x, y)| {
                let (x, y) = (x.as_ref()?.get(key)?, y.as_ref()?.get(key)?);
                (*y > 0.0).then(|| x / y)
            })
            .collect();
        let detail = format!(
            "{id} {key} tls / tcp: per repeat {}; medians {} / {}",
            ratios
                .iter()
                .map(|r| fmt_num(*r))
                .collect::<Vec<_>>()
                .join(", "),
            tls.get(key).map_or("-".into(), fmt_num),
            tcp.get(key).map_or("-".into(), fmt_num)
        );
        ((!ratios.is_empty()).then(|| median(ratios)), detail)
    };
    let (value, detail) = cross("rust-seq", "rate");
    out.push(Goal {
        name: "Rust TLS seq echo >= 0.7x plain TCP".into(),
        detail,
        value,
        target: 0.7,
        higher_is_better: true,
    });
    let mib = plan.sizes[0] / MIB;
    let (value, detail) = cross(&format!("rust-big-{mib}"), "mbps");
    out.push(Goal {
        name: format!("Rust {mib} MiB return over TLS >= 0.5x plain TCP MB/s"),
        detail,
        value,
        target: 0.5,
        higher_is_better: true,
    });
    let flood = find("rust-tls-flood", Transport::Tls);
    let p99 = flood.and_then(|s| s.get("p99_us")).map(|us| us / 1000.0);
    out.push(Goal {
        name: "honest TLS calls' p99 <= 100 ms during a junk TLS handshake flood".into(),
        detail: flood.map_or("did not run".into(), |s| {
            format!(
                "p50 {} ms, p99 {} ms, {} junk handshakes",
                s.get("p50_us").map_or("-".into(), |v| fmt_num(v / 1000.0)),
                p99.map_or("-".into(), fmt_num),
                s.get("junk_handshakes").map_or("-".into(), fmt_num)
            )
        }),
        value: p99,
        target: 100.0,
        higher_is_better: false,
    });
}
