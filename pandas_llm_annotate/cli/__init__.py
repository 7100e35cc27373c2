"""The command line: `pandas-llm-annotate annotate data.csv -c text --labels labels.txt
-o out.parquet` (also `python -m pandas_llm_annotate ...`).

It reads the file, runs `annotate` on one column (the same pipeline, cache, limits and
text bar as in Python) and writes the file with one more column. Everything that can
be checked is checked before the first request (settings, labels, prompt, input,
column, output folder and format), so a mistake costs no tokens.

Exit codes: 0 done (rows left without an answer are a warning: empty cells, and a rerun
asks only for them); 1 the run failed (server unreachable, key refused, unknown model,
output not written); 2 usage (flags, files, column, labels, settings); 130 interrupted
(Ctrl-C): the answers so far are in the cache and the same command resumes.
Messages are one `error: ...` line, never a traceback (except for a bug).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..accessor import pick_column
from ..api import REPORT_ATTR, annotate, estimate, last_report
from ..config import ENV_VARS, OPENAI_BASE_URL, resolve
from ..display.text_bar import terminal_width
from ..errors import AnnotateError, ConfigError
from ..pipeline.cache_file import resolve_path
from ..protocol.prompts import check_labels
from ..report.report import Report
from .args import build_parser, settings_given
from .files import check_output, read_labels, read_table, read_text, write_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
FAILURES_SHOWN = 3  # rows without an answer listed after the warning


@dataclass(frozen=True)
class Job:
    """Everything a run needs, checked: what the command line asks for."""

    data: pd.DataFrame
    texts: pd.Series
    output: Path
    output_column: str
    prompt: str | None
    labels: list[str] | None
    options: dict[str, Any]


def say(message: str) -> None:
    """A message on stderr; in a terminal, wrapped between words to its width."""
    if sys.stderr.isatty():
        message = textwrap.fill(message, terminal_width(sys.stderr) - 1, subsequent_indent="  ",
                                break_long_words=False, break_on_hyphens=False)
    print(message, file=sys.stderr, flush=True)


def check_settings(options: dict[str, Any]) -> None:
    """The settings' own check, with the two usual misses said in the command line's words."""
    settings = resolve(**options)
    if not settings.model:
        raise ConfigError(f"No model: pass --model NAME or set ${ENV_VARS['model']}.")
    if OPENAI_BASE_URL in settings.base_urls and not settings.api_key:
        raise ConfigError(
            f"No API key for api.openai.com: set ${ENV_VARS['api_key']} (keys are read from the "
            "environment, never from the command line), or pass --base-url for another server.")
    settings.check()


def prepare(args: argparse.Namespace) -> Job:
    """Read and check everything the run needs; nothing is asked yet."""
    options = settings_given(args)
    if "progress" not in options:  # a terminal gets the live bar, a log the summary
        options["progress"] = "auto" if sys.stderr.isatty() else "summary"
    check_settings(options)
    prompt = args.prompt
    if args.prompt_file:
        prompt = read_text(Path(args.prompt_file), "prompt").strip()
    labels = read_labels(args.labels) if args.labels else None
    check_labels(labels)
    output = Path(args.output)
    check_output(output)
    source = Path(args.input)
    data = read_table(source)
    texts = pick_column(data, args.column, where=str(source))
    output_column = args.output_column or f"{args.column}_llm"
    if output_column in data.columns:
        raise ConfigError(f"{source} already has a column {output_column!r}: name the column "
                          "of answers with --output-column.")
    return Job(data, texts, output, output_column, prompt, labels, options)


def _shown(before: Report | None, job: Job) -> bool:
    """Whether the text bar already showed how the run ended (and why)."""
    report = last_report()
    return job.options["progress"] is not False and report is not None and report is not before


def execute(job: Job) -> int:
    before = last_report()
    try:
        answers = annotate(job.texts, job.prompt, labels=job.labels, **job.options)
    except ConfigError as exc:  # found by the run, e.g. --semantic without its extra
        return fail(exc, EXIT_USAGE, shown=_shown(before, job))
    except AnnotateError as exc:
        return fail(exc, EXIT_FAILED, shown=_shown(before, job))
    data = job.data.copy()
    data[job.output_column] = answers
    try:
        write_table(data, job.output)
    except AnnotateError as exc:
        return fail(exc, EXIT_FAILED)
    say(f"wrote {job.output}: {len(data):,} rows, the answers in column {job.output_column!r}")
    warn_unanswered(answers.attrs[REPORT_ATTR], job)
    return EXIT_OK


def show_estimate(job: Job) -> int:
    """`--estimate`: what the run would ask and cost, on stdout; no request, no output."""
    try:
        found = estimate(job.texts, job.prompt, labels=job.labels, **job.options)
    except AnnotateError as exc:
        return fail(exc, EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)
    print(json.dumps(found.to_dict(), indent=2))
    return EXIT_OK


def warn_unanswered(report: Report, job: Job) -> None:
    if not report.failed:
        return
    say(f"warning: {report.failed:,} of {report.rows:,} rows got no answer; their cells in "
        f"{job.output_column!r} are empty. The same command asks only for them again.")
    for _, row in report.failures.head(FAILURES_SHOWN).iterrows():
        # The file's rows counted from 1 (the data was read with a RangeIndex).
        say(f"  row {int(row['index']) + 1}: {str(row['error'])[:160]}")


def fail(exc: BaseException, code: int, *, shown: bool = False) -> int:
    if not shown:  # else the bar's final block already says it
        say(f"error: {exc}")
    return code


def interrupted(options: dict[str, Any] | None) -> int:
    """Ctrl-C: the bar's final block has the numbers; say how to go on."""
    cache = None if options is None else options.get("cache", True)
    if cache is None:
        say("interrupted before the first request")
    elif cache is False:
        say("interrupted (no cache: a rerun asks for every text again)")
    else:
        where = resolve_path(None if cache is True else cache)
        say(f"interrupted: the answers so far are in the cache ({where}); "
            "the same command asks only for the rest")
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)  # usage errors exit with 2 here
    options: dict[str, Any] | None = None
    try:
        try:
            job = prepare(args)
        except AnnotateError as exc:
            return fail(exc, EXIT_USAGE)
        options = job.options
        if args.estimate:
            return show_estimate(job)
        return execute(job)
    except KeyboardInterrupt:
        return interrupted(options)


def run() -> None:
    """The console script `pandas-llm-annotate`."""
    sys.exit(main())
