"""Rows, checks and a scenario's outputs: a markdown table, a JSON file and a PNG chart."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    """One contender's run. ``status`` is "ok" or why there are no numbers."""

    contender: str
    rows: int
    status: str = "ok"
    wall_s: float | None = None
    bound_s: float | None = None
    requests: int | None = None
    rate_limited: int | None = None
    retries: int | None = None
    rows_lost: int | None = None
    same_as_unpacked: int | None = None
    tokens: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.wall_s is not None

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.wall_s if self.ok and self.wall_s else None

    @property
    def ratio(self) -> float | None:
        if not self.ok or not self.bound_s or self.wall_s is None:
            return None
        return self.wall_s / self.bound_s


@dataclass(frozen=True)
class Check:
    """A target and whether the measured number meets it."""

    what: str
    target: str
    actual: str
    passed: bool

    def line(self) -> str:
        return f"- **{'PASS' if self.passed else 'FAIL'}** {self.what}: {self.actual} " \
               f"(target {self.target})"


def check(what: str, target: str, value: float | None,
          ok: Callable[[float], bool]) -> Check:
    """A `Check` of a measured ``value`` (None: the run gave no number, so FAIL)."""
    if value is None:
        return Check(what, target, "no number (the run failed)", False)
    shown = f"{value:.2f}" if isinstance(value, float) else f"{value:,}"
    return Check(what, target, shown, bool(ok(value)))


@dataclass
class Scenario:
    """Everything a scenario measured and how to read it."""

    name: str
    title: str
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    bounds: list[tuple[str, float]] = field(default_factory=list)  # lines on the chart
    extra_tables: list[str] = field(default_factory=list)
    bars: list[tuple[str, float]] = field(default_factory=list)  # chart these instead
    ylabel: str = "wall time, s"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


HEADER = ("contender", "wall s", "rows/s", "× bound", "bound s", "requests", "429s",
          "retries", "rows lost", "tokens", "= unpacked")


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        if not r.ok:
            cells = [r.contender, r.status] + ["-"] * (len(HEADER) - 2)
        else:
            same = "-" if r.same_as_unpacked is None else f"{r.same_as_unpacked:,}/{r.rows:,}"
            cells = [
                r.contender, _num(r.wall_s), _num(r.rows_per_s, "{:,.0f}"),
                _num(r.ratio), _num(r.bound_s), _int(r.requests), _int(r.rate_limited),
                _int(r.retries), _int(r.rows_lost), _int(r.tokens), same,
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(s: Scenario) -> str:
    parts = [f"## {s.name}: {s.title}", ""]
    if s.rows:
        parts += [table(s.rows), ""]
    for extra in s.extra_tables:
        parts += [extra, ""]
    parts += [f"- {note}" for note in s.notes]
    if s.checks:
        parts += ["", "Targets:", *[c.line() for c in s.checks]]
    return "\n".join(parts).rstrip() + "\n"


def to_json(s: Scenario) -> dict[str, Any]:
    rows = []
    for r in s.rows:
        d = asdict(r)
        d.update(rows_per_s=r.rows_per_s, ratio_to_bound=r.ratio)
        rows.append(d)
    return {
        "scenario": s.name, "title": s.title, "config": s.config, "rows": rows,
        "notes": s.notes, "bounds": [{"label": k, "seconds": v} for k, v in s.bounds],
        "checks": [asdict(c) for c in s.checks], "machine": machine(),
    }


def _bar_label(r: Row) -> str:
    if not r.ok or r.wall_s is None:
        return r.status.split(":")[0].split(" (")[0]
    lost = f"\n{r.rows_lost:,} rows lost" if r.rows_lost else ""
    return f"{r.wall_s:.2f}s{lost}"


def chart(s: Scenario, path: Path) -> None:
    """Bar chart of wall time per contender (or of ``s.bars``), the bounds as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if s.bars:
        names = [name for name, _ in s.bars]
        values = [value for _, value in s.bars]
        labels = [f"{value:,.0f}" for value in values]
    else:
        names = [r.contender for r in s.rows]
        values = [r.wall_s if r.ok and r.wall_s is not None else 0.0 for r in s.rows]
        labels = [_bar_label(r) for r in s.rows]
    # Orange: the run lost rows, so its bar is not comparable work.
    colors = ["#4c72b0"] * len(names) if s.bars else \
        ["#dd8452" if r.rows_lost else "#4c72b0" for r in s.rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) + 2), 4.5))
    bars = ax.bar(range(len(names)), values, color=colors)
    for bar, label in zip(bars, labels, strict=True):
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    styles = ["--", ":", "-."]
    for i, (label, value) in enumerate(s.bounds):
        ax.axhline(value, color="#c44e52", linestyle=styles[i % len(styles)],
                   label=f"{label}: {value:.2f}s")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(s.ylabel)
    ax.set_ylim(0, max([*values, *(v for _, v in s.bounds), 0.1]) * 1.15)
    ax.set_title(f"{s.name}: {s.title}", fontsize=9, wrap=True)
    if s.bounds:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _proc_field(path: str, field: str) -> str | None:
    """The value of ``field:`` in a /proc file such as /proc/cpuinfo (None elsewhere)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on: cores, CPU model, RAM, Python, load average."""
    mem_kb = (_proc_field("/proc/meminfo", "MemTotal") or "").split()[:1]
    return {
        "cores": os.cpu_count(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or None,
        "ram_gb": round(int(mem_kb[0]) / 1024**2, 1) if mem_kb and mem_kb[0].isdigit() else None,
        "python": platform.python_version(),
        "platform": sys.platform,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def publish(name: str, text: str, data: dict[str, Any], out_dir: Path = RESULTS) -> None:
    """Print a stand-alone benchmark's markdown and write ``<name>.md`` and ``<name>.json``
    (``data`` plus the machine, unless it says its own)."""
    print("\n" + text)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    data.setdefault("machine", machine())
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n",
                                          encoding="utf-8")


def write(s: Scenario, out_dir: Path = RESULTS) -> str:
    """Write ``<name>.md``, ``.json`` and ``.png``; return the markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(s)
    (out_dir / f"{s.name}.md").write_text(text, encoding="utf-8")
    (out_dir / f"{s.name}.json").write_text(json.dumps(to_json(s), indent=2), encoding="utf-8")
    chart(s, out_dir / f"{s.name}.png")
    return text
