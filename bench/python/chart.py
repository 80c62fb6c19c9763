"""Draws the bench chart: ``python chart.py RESULTS_JSON OUT_PNG``.

RESULTS_JSON is what ``cargo xtask bench`` writes: ``{"cases": [...],
"goals": [...]}``, each case with its median ``rate`` (calls/s) and ``mbps``,
each goal with its measured ``ratio``, its ``target`` and whether higher is
better. Left: sequential and concurrent call rates; middle: large-value
throughput; right: each goal's measured value as a fraction of its target
(>= 1 is met).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(src) as f:
        data = json.load(f)
    cases = [c for c in data["cases"] if c.get("ok")]
    rate_cases = [c for c in cases if c.get("rate") and not c.get("mbps") and c["kind"] == "rate"]
    big_cases = [c for c in cases if c.get("mbps")]
    goals = [g for g in data["goals"] if g.get("score") is not None]

    height = max(7, 0.2 * len(goals) + 1.5)
    fig, axes = plt.subplots(1, 3, figsize=(18, height), gridspec_kw={"width_ratios": [3, 2, 3]})
    colors = {"tcp": "#4C72B0", "unix": "#DD8452", "tls": "#55A868"}

    ax = axes[0]
    names = sorted({c["name"] for c in rate_cases}, key=lambda n: [c["name"] for c in rate_cases].index(n))
    for i, t in enumerate(("tcp", "unix")):
        vals = []
        for n in names:
            v = [c["rate"] for c in rate_cases if c["name"] == n and c["transport"] == t]
            vals.append(v[0] if v else 0)
        ax.barh([y + i * 0.4 for y in range(len(names))], vals, height=0.4, label=t, color=colors[t])
    ax.set_yticks([y + 0.2 for y in range(len(names))])
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("calls/s (median of repeats)")
    ax.set_title("Call rate")
    ax.legend()

    ax = axes[1]
    labels = ["%s %s" % (c["name"], c["transport"]) for c in big_cases]
    ax.barh(range(len(big_cases)), [c["mbps"] for c in big_cases],
            color=[colors.get(c["transport"], "#8172B2") for c in big_cases])
    ax.set_yticks(range(len(big_cases)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("MB/s (median of repeats)")
    ax.set_title("Large bytes return")

    ax = axes[2]
    ax.barh(range(len(goals)), [min(g["score"], 3.0) for g in goals],
            color=["#55A868" if g["met"] else "#C44E52" for g in goals])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(goals)))
    ax.set_yticklabels([g["name"] for g in goals], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("measured / goal (>= 1 met; capped at 3)")
    ax.set_title("Goals")

    fig.suptitle(data.get("title", "pyrpc bench"))
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
