"""The command line's files: data (CSV, TSV, JSONL, Parquet, by extension), labels and
prompts. Every failure is a `DataFileError` that names the file and says what to do."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pandas as pd

from ..errors import DataFileError

FORMATS = {".csv": "CSV", ".tsv": "TSV", ".jsonl": "JSONL", ".ndjson": "JSONL",
           ".parquet": "Parquet", ".pq": "Parquet"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")  # pandas infers them from the name
# JSONL values as in the file: pandas 3 keeps dates as text with dtype=False (and
# deprecates convert_dates); pandas 2 needs convert_dates=False for date-like names.
PANDAS_2 = int(pd.__version__.split(".")[0]) < 3
KNOWN = ".csv, .tsv, .jsonl or .parquet (CSV, TSV and JSONL also compressed, e.g. .csv.gz)"


def file_format(path: Path) -> str:
    """`CSV`, `TSV`, `JSONL` or `Parquet`, from the file's extension."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] in COMPRESSIONS
    if compressed:
        suffixes.pop()
    kind = FORMATS.get(suffixes[-1]) if suffixes else None
    if kind is None or (kind == "Parquet" and compressed):
        raise DataFileError(f"Unknown format of {path}: name the file {KNOWN}.")
    return kind


def check_parquet_engine(path: Path) -> None:
    for engine in ("pyarrow", "fastparquet"):
        try:
            importlib.import_module(engine)
        except ImportError:
            continue
        return
    raise DataFileError(f"{path} is a Parquet file, which needs pyarrow: pip install pyarrow "
                        "(or pip install 'pandas-llm-annotate[parquet]'), or use .csv or .jsonl.")


def _reason(exc: BaseException) -> str:
    text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def read_table(path: Path) -> pd.DataFrame:
    """The whole file; CSV and TSV cells as text (an empty cell is missing)."""
    kind = file_format(path)
    if kind == "Parquet":
        check_parquet_engine(path)
    if not path.exists():
        raise DataFileError(f"No such file: {path}.")
    try:
        if kind in ("CSV", "TSV"):
            return pd.read_csv(path, sep="\t" if kind == "TSV" else ",", dtype=str,
                               keep_default_na=False, na_values=[""])
        if kind == "JSONL":
            if PANDAS_2:
                return pd.read_json(path, lines=True, dtype=False, convert_dates=False)
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path)
    except OSError as exc:
        raise DataFileError(f"Cannot read {path}: {_reason(exc)}.") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataFileError(f"Cannot read {path} as {kind}: {_reason(exc)}.") from exc


def check_output(path: Path) -> None:
    """Before any request: the output's format is known and its folder writable."""
    kind = file_format(path)
    if kind == "Parquet":
        check_parquet_engine(path)
    folder = path.parent
    if not folder.is_dir():
        raise DataFileError(f"No folder {folder} for the output {path.name}: create it first.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataFileError(f"Cannot write to the folder {folder}: choose another --output.")
    if path.is_dir():
        raise DataFileError(f"The output {path} is a folder: give a file name.")


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write `df` to a temporary file beside `path`, then put it in place: an
    interrupted write never leaves half a file."""
    kind = file_format(path)
    partial = path.with_name(f".partial-{os.getpid()}-{path.name}")  # same extensions
    try:
        if kind in ("CSV", "TSV"):
            df.to_csv(partial, sep="\t" if kind == "TSV" else ",", index=False)
        elif kind == "JSONL":
            df.to_json(partial, orient="records", lines=True, force_ascii=False)
        else:
            df.to_parquet(partial, index=False)
        os.replace(partial, path)
    except OSError as exc:
        raise DataFileError(f"Cannot write {path}: {_reason(exc)}. The answers are in the "
                            "cache: run the same command with another --output.") from exc
    except (ValueError, TypeError) as exc:  # e.g. a column Parquet cannot store
        raise DataFileError(f"Cannot write {path} as {kind}: {_reason(exc)}. The answers are "
                            "in the cache: run the same command with a .csv or .jsonl "
                            "--output.") from exc
    finally:
        partial.unlink(missing_ok=True)


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataFileError(f"Cannot read the {what} file {path}: {_reason(exc)}.") from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(f"The {what} file {path} is not UTF-8 text.") from exc


def read_labels(value: str) -> list[str]:
    """`--labels`: a file with one label per line, or a comma-separated list."""
    path = Path(value)
    if path.is_file():
        labels = [line.strip() for line in read_text(path, "labels").splitlines()]
        labels = [label for label in labels if label]
        if not labels:
            raise DataFileError(f"No labels in {path}: write one label per line.")
        return labels
    if "," in value:
        return [label.strip() for label in value.split(",") if label.strip()]
    raise DataFileError(
        f"--labels {value!r}: no such file. Give a file with one label per line, or a "
        "comma-separated list such as --labels positive,negative,neutral.")
