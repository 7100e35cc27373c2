"""The command line's arguments: the data's (input, column, task, output) and one flag
per field of `config.Settings`, derived from the fields so the two cannot drift apart.

A field gets its flag from its type (`int`, `float`, `str`: a value; `bool`:
`--x/--no-x`), or from `SPECIAL`; its help from `HELP`. A field with neither a
derivable type nor an entry in `SPECIAL`, or without help, fails the parser's
construction (and so every test of the command line). `EXCLUDED` lists the fields
that deliberately have no flag, and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from typing import Any, get_args, get_type_hints

from ..config import ENV_VARS, Settings

EXCLUDED = {  # field -> why it has no flag
    "api_key": "a key on the command line ends up in the shell's history and in `ps`",
}
GROUPS = {
    "server": "server and model",
    "speed": "speed and rate limits (learned from the server's headers when not given)",
    "answers": "answers",
    "cache": "cache (a rerun, or the rerun after Ctrl-C, asks only for what is missing)",
    "display": "display",
}
# Settings field -> (group, help, metavar). Defaults are appended from `Settings`.
HELP: dict[str, tuple[str, str, str | None]] = {
    "model": ("server", f"model name sent to the server (or ${ENV_VARS['model']})", "NAME"),
    "base_url": ("server", f"API root, usually ending in /v1 (or ${ENV_VARS['base_url']}; "
                 f"the API key only from ${ENV_VARS['api_key']}); repeat it for several "
                 "servers of the same model: requests go to whichever has room", "URL"),
    "max_concurrency": ("speed", "requests in flight at most", "N"),
    "max_retries": ("speed", "retries per request (429, 5xx, timeouts, dropped connections)",
                    "N"),
    "timeout": ("speed", "seconds per request", "SECONDS"),
    "rpm": ("speed", "requests per minute at most, for this run", "N"),
    "tpm": ("speed", "tokens per minute at most, for this run", "N"),
    "max_wait": ("speed", "a wait the server names (retry-after) longer than this ends the run "
                 "with the server's reason; the answers so far stay in the cache", "SECONDS"),
    "rows_per_request": ("speed", "texts per request (row packing), or 'auto'", "N|auto"),
    "temperature": ("answers", "sampling temperature", "T"),
    "max_tokens": ("answers", "tokens per answer at most (default: from the task: twice the "
                   "longest label + 8, 32 for the default task, 512 for a free prompt)", "N"),
    "max_chunk_tokens": ("answers", "longer cells are split at sentence ends and the chunks' "
                         "answers merged", "N"),
    "structured": ("answers", "with labels, constrain the answer with a JSON schema where the "
                   "server can (--no-structured: instructions alone)", None),
    "stream": ("answers", "stream the answers (SSE); records the time to first token", None),
    "cache": ("cache", "folder (or .sqlite file) of the answer cache (default: "
              "$LLM_ANNOTATE_CACHE_DIR, else the user cache folder)", "DIR"),
    "semantic": ("cache", "reuse the answer of a near-identical text: cosine threshold, 0.96 "
                 "when none is given (needs pandas-llm-annotate[semantic])", "THRESHOLD"),
    "embedder": ("cache", "for --semantic: a sentence-transformers model name or local path "
                 "(default all-MiniLM-L6-v2)", "NAME"),
    "max_response_bytes": ("answers", "largest answer accepted, counted after decompression "
                           "(a bigger one fails its row)", "BYTES"),
    "cache_namespace": ("cache", "the server's identity in cache keys (default: 'local' for "
                        "loopback servers, else the host name)", "NAME"),
    "price": ("answers", "USD per 1M prompt and per 1M completion tokens, for the cost "
              "(default: the model's list price where known)", "USD"),
    "batch": ("speed", "send through the provider's Batch API: half price, answers within "
              "24 h; a rerun resumes open batches", None),
    "batch_fallback": ("speed", "what a batch did not answer is asked again in a new batch, "
                       "or online", "batch|online"),
    "batch_poll_s": ("speed", "first wait between batch status checks (backs off to 60 s)",
                     "SECONDS"),
    "max_cost": ("answers", "USD: stop before the run could spend more (needs a known price or "
                 "--price)", "USD"),
    "progress": ("display", "the live bar on stderr (default: in a terminal; elsewhere only "
                 "the final summary); --no-progress: nothing", None),
}
NEGATIONS = {"cache": "no answer cache: every text is asked, nothing is kept"}


def rows_per_request(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 or 'auto', got {value!r}")
    return number


SPECIAL: dict[str, dict[str, Any]] = {
    "base_url": {"type": str, "action": "append"},
    "cache": {"type": str},
    "progress": {"action": argparse.BooleanOptionalAction},
    "rows_per_request": {"type": rows_per_request},
    "semantic": {"type": float, "nargs": "?", "const": True},
    "embedder": {"type": str},
    "price": {"type": float, "nargs": 2},
    "batch_fallback": {"type": str, "choices": ["batch", "online"]},
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _kwargs(name: str, hint: Any) -> dict[str, Any]:
    if name in SPECIAL:
        return dict(SPECIAL[name])
    kinds = [k for k in (get_args(hint) or (hint,)) if k is not type(None)]
    if kinds == [bool]:
        return {"action": argparse.BooleanOptionalAction}
    if len(kinds) == 1 and kinds[0] in (int, float, str):
        return {"type": kinds[0]}
    raise TypeError(f"Settings.{name} ({hint}) has no command-line flag: give it one in "
                    "pandas_llm_annotate/cli/args.py (SPECIAL), or list it in EXCLUDED.")


def _default(field: dataclasses.Field[Any]) -> str:
    value = field.default
    if field.name in SPECIAL:  # said in its help
        return ""
    if isinstance(value, bool):
        return f" (default: {'on' if value else 'off'})"
    if isinstance(value, (int, float, str)):
        return f" (default: {value})"
    return ""


def add_settings(parser: argparse.ArgumentParser) -> None:
    """One flag per field of `Settings` (except `EXCLUDED`), in groups."""
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    hints = get_type_hints(Settings)
    for field in dataclasses.fields(Settings):
        if field.name in EXCLUDED:
            continue
        if field.name not in HELP:
            raise TypeError(f"Settings.{field.name} has no help: add it to HELP in "
                            "pandas_llm_annotate/cli/args.py, or list it in EXCLUDED.")
        group, text, metavar = HELP[field.name]
        kwargs = _kwargs(field.name, hints[field.name])
        if metavar is not None:
            kwargs["metavar"] = metavar
        groups[group].add_argument(flag(field.name), dest=field.name, default=None,
                                   help=text + _default(field), **kwargs)
        if field.name in NEGATIONS:
            groups[group].add_argument("--no-" + flag(field.name)[2:], dest=field.name,
                                       action="store_false", help=NEGATIONS[field.name])


def settings_given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line sets (flags not given are left to the environment
    and the defaults)."""
    names = (f.name for f in dataclasses.fields(Settings) if f.name not in EXCLUDED)
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


NOTES = [
    f"The API key is read from ${ENV_VARS['api_key']}, never from a flag: "
    f"{EXCLUDED['api_key']}. Also read: ${ENV_VARS['base_url']}, ${ENV_VARS['model']}, "
    "$LLM_ANNOTATE_CACHE_DIR.",
    "Formats, by extension: .csv, .tsv, .jsonl (.ndjson), .parquet (.pq; needs pyarrow). "
    "CSV, TSV and JSONL may end in .gz, .bz2, .xz, .zst or .zip. CSV and TSV cells are read "
    "as text and written back unchanged; an empty cell is a missing one.",
    "Exit codes: 0 done (rows without an answer are a warning: their cells are empty, and "
    "a rerun asks only for them); 1 the run failed (server unreachable, key refused, unknown "
    "model, output not written); 2 usage (flags, files, column, labels, settings); 130 "
    "interrupted (Ctrl-C): the answers so far are in the cache, the same command resumes.",
]
EXAMPLES = """\
examples:
  pandas-llm-annotate annotate reviews.csv -c text --labels pos,neg,neutral \\
      --model gpt-4o-mini -o labelled.csv
  pandas-llm-annotate annotate tickets.jsonl -c body --labels intents.txt \\
      --prompt "Which banking intent is this?" \\
      --base-url http://127.0.0.1:8080/v1 --model local -o tickets.parquet
"""
EPILOG = "\n\n".join([*(textwrap.fill(note, 78) for note in NOTES), EXAMPLES])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pandas-llm-annotate",
        description="Label a column of a data file with an LLM (any OpenAI-compatible server).")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = commands.add_parser(
        "annotate", help="add a column of answers to a CSV, TSV, JSONL or Parquet file",
        description="Ask the LLM about every row of one column; write the file with the\n"
                    "answers in one more column. Each distinct text is asked once, and cached.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = sub.add_argument_group("data and task")
    data.add_argument("input", metavar="INPUT", help="the data file")
    data.add_argument("-c", "--column", required=True, help="the column of texts to annotate")
    data.add_argument("--estimate", action="store_true",
                      help="print what the run would ask and cost (JSON on stdout) and stop: "
                           "no request, no output file")
    data.add_argument("-o", "--output", required=True, metavar="FILE",
                      help="the file to write (format by extension; replaced if it exists)")
    data.add_argument("--output-column", metavar="NAME",
                      help="the column of answers (default: COLUMN_llm, e.g. text_llm)")
    data.add_argument("-l", "--labels", metavar="FILE|A,B,C",
                      help="answer with one of these labels: a file with one label per line, "
                           "or a comma-separated list")
    prompt = data.add_mutually_exclusive_group()
    prompt.add_argument("-p", "--prompt", metavar="TEXT",
                        help="the question or instruction (default: with labels, pick one; "
                             "without, a 1-3 word topic)")
    prompt.add_argument("--prompt-file", metavar="FILE", help="read the prompt from a file")
    add_settings(sub)
    return parser
