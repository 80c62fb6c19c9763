//! Results: the medians of each case ([`Summary`]), the tables of
//! RESULTS.md, `results.json` and the run's header line.

use super::*;

// ===== results =====

/// The medians of one case's successful repeats.
pub(super) struct Summary {
    pub(super) case: Case,
    pub(super) runs: usize,
    pub(super) ok: usize,
    pub(super) errors: Vec<String>,
    pub(super) median: Sample,
    /// Smallest and largest `rate` of the repeats.
    pub(super) rate_range: (f64, f64),
    /// Each repeat's sample (`None` where it failed), for ratios paired
    /// within a repeat.
    pub(super) per_rep: Vec<Option<Sample>>,
}

impl Summary {
    pub(super) fn get(&self, k: &str) -> Option<f64> {
        self.median.get(k).copied()
    }
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub(super) fn summarize(case: Case, samples: &[Result<Sample, String>]) -> Summary {
    let ok: Vec<&Sample> = samples.iter().filter_map(|s| s.as_ref().ok()).collect();
    let mut keys: Vec<&String> = ok.iter().flat_map(|s| s.keys()).collect();
    keys.sort();
    keys.dedup();
    let median = keys
        .into_iter()
        .map(|k| {
            let vals = ok.iter().filter_map(|s| s.get(k).copied()).collect();
            (k.clone(), median(vals))
        })
        .collect();
    let rates: Vec<f64> = ok.iter().filter_map(|s| s.get("rate").copied()).collect();
    let rate_range = (
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
    );
    Summary {
        case,
        runs: samples.len(),
        ok: ok.len(),
        errors: samples
            .iter()
            .filter_map(|s| s.as_ref().err().cloned())
            .collect(),
        median,
        rate_range,
        per_rep: samples.iter().map(|s| s.as_ref().ok().cloned()).collect(),
    }
}

pub(super) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(super) fn opt(v: Option<f64>, scale: f64) -> String {
    v.map_or("".into(), |v| fmt_num(v / scale))
}

pub(super) fn table(summaries: &[Summary]) -> String {
    let mut s = String::new();
    s.push_str("| case | transport | calls/s | rate min-max | p50 µs | p99 µs | server CPU µs/call | MB/s | client peak MiB | server idle MiB | server peak MiB | runs ok |\n");
    s.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for x in summaries {
        let rate = x.get("rate");
        let range = if x.ok > 0 {
            format!("{}-{}", fmt_num(x.rate_range.0), fmt_num(x.rate_range.1))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            x.case.name,
            x.case.transport.name(),
            opt(rate, 1.0),
            range,
            opt(x.get("p50_us"), 1.0),
            opt(x.get("p99_us"), 1.0),
            // Per call only where calls are small and many (echo cases).
            opt(
                x.get("server_cpu_us_per_call")
                    .filter(|_| x.case.kind == Kind::Rate),
                1.0
            ),
            opt(x.get("mbps"), 1.0),
            opt(x.get("rss_peak_kb"), 1024.0),
            opt(x.get("server_idle_kb"), 1024.0),
            opt(x.get("server_peak_kb"), 1024.0),
            x.ok,
            x.runs
        );
    }
    s
}

pub(super) fn goals_table(goals: &[Goal]) -> String {
    let mut s =
        String::from("| goal | measured | value | target | verdict |\n|---|---|--:|--:|---|\n");
    for g in goals {
        let verdict = match g.met() {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "NOT RUN",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} {} | {verdict} |",
            g.name,
            g.detail,
            g.value.map_or("-".into(), fmt_num),
            if g.higher_is_better { ">=" } else { "<=" },
            fmt_num(g.target)
        );
    }
    s
}

pub(super) fn results_json(title: &str, summaries: &[Summary], goals: &[Goal]) -> String {
    use serde_json::{json, Map, Value};
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
    let cases: Vec<Value> = summaries
        .iter()
        .map(|x| {
            let kind = match x.case.kind {
                Kind::Rate => "rate",
                Kind::Nb => "nb",
                Kind::Big => "big",
                Kind::Scale => "scale",
            };
            let mut o = Map::new();
            o.insert("id".into(), json!(x.case.id));
            o.insert("name".into(), json!(x.case.name));
            o.insert("transport".into(), json!(x.case.transport.name()));
            o.insert("kind".into(), json!(kind));
            o.insert("ok".into(), json!(x.ok == x.runs && x.ok > 0));
            for (k, v) in &x.median {
                o.insert(k.clone(), json!(finite(Some(*v)).unwrap_or(0.0)));
            }
            Value::Object(o)
        })
        .collect();
    let goals: Vec<Value> = goals
        .iter()
        .map(|g| {
            json!({
                "name": g.name,
                "detail": g.detail,
                "value": finite(g.value),
                "target": g.target,
                "higher_is_better": g.higher_is_better,
                "met": g.met().unwrap_or(false),
                "score": finite(g.score()),
            })
        })
        .collect();
    let doc = json!({ "title": title, "cases": cases, "goals": goals });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// One line about the machine and the tree, for the report's header.
pub(super) fn describe_run(
    root: &Path,
    plan: &Plan,
    load_before: &str,
    elapsed: Duration,
) -> String {
    let out = |cmd: &mut Command| {
        cmd.current_dir(root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let date = out(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
    let rev = out(Command::new("git").args(["describe", "--always", "--dirty"]));
    let kernel = out(Command::new("uname").arg("-r"));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split(':')
                    .nth(1)
                    .map(|s| s.trim().to_owned())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{date}, tree {rev}, {cores} cores ({cpu}), Linux {kernel}; {} repeat(s) per case, interleaved, {} s per rate loop; load average before {} / after {}; took {:.0?}",
        plan.repeats,
        plan.secs,
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        load_after.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        elapsed
    )
}

/// The hand-written section of an existing RESULTS.md, markers included:
/// from the start marker to the end of the file, so that sections appended
/// after the end marker by hand are kept too (the end marker is put back
/// last).
pub(super) fn kept_analysis(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match (text.find(ANALYSIS_START), text.find(ANALYSIS_END)) {
        (Some(a), Some(b)) if a < b => {
            let kept = text[a..].replacen(ANALYSIS_END, "", 1);
            format!("{}\n\n{ANALYSIS_END}", kept.trim_end())
        }
        _ => format!(
            "{ANALYSIS_START}\n## Analysis\n\n(Hand-written: what limits each miss and what would fix it. \
             `cargo xtask bench` keeps this section when it rewrites the file.)\n{ANALYSIS_END}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analysis_and_sections_after_its_end_marker_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("RESULTS.md");
        std::fs::write(
            &path,
            format!(
                "# old table\n{ANALYSIS_START}\n## A\n{ANALYSIS_END}\n\n### appended later\nB\n"
            ),
        )
        .unwrap();
        let kept = kept_analysis(&path);
        assert!(kept.starts_with(ANALYSIS_START), "{kept}");
        assert!(kept.ends_with(ANALYSIS_END), "{kept}");
        assert!(!kept.contains("old table"), "{kept}");
        assert!(
            kept.contains("## A") && kept.contains("### appended later\nB"),
            "{kept}"
        );
        assert_eq!(kept.matches(ANALYSIS_END).count(), 1, "{kept}");
    }

    #[test]
    fn a_file_without_markers_gets_an_empty_analysis() {
        let dir = tempfile::tempdir().unwrap();
        let kept = kept_analysis(&dir.path().join("missing.md"));
        assert!(kept.starts_with(ANALYSIS_START) && kept.ends_with(ANALYSIS_END));
    }
}
