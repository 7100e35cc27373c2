#!/usr/bin/env python3
"""Execute a notebook in a real kernel, export it to HTML with its widget state, and
screenshot the HTML in headless Chromium.

    python scripts/render_notebook.py notebooks/01_quick_start.ipynb      # -> build/notebooks/
    python scripts/render_notebook.py notebooks/*.ipynb --out /tmp/nb --no-png
    python scripts/render_notebook.py --fetch-widget-js                   # once, needs npm

The exported HTML shows the widgets (the live panel, in its final state) with the
`@jupyter-widgets/html-manager` script. That script normally comes from a CDN; offline,
`--fetch-widget-js` gets it (and require.js) once with `npm pack` into
`~/.cache/pandas-llm-annotate/widget-js` (or `$PLA_WIDGET_JS`), and the HTML points
there. Without it, and without `--cdn`, the widget state is left out of the HTML so
each panel shows its static HTML copy instead.

Chromium: the Debian package (`apt-get install chromium`), or `$CHROMIUM`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KERNEL_NAME = "pla-render-python"
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"
REQUIREJS = "requirejs@2.3.8"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=8000",
]


def widget_js_dir() -> Path:
    env = os.environ.get("PLA_WIDGET_JS")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pandas-llm-annotate" / "widget-js"


def find_widget_js(base: Path | None = None) -> tuple[Path, Path] | None:
    """`(embed-amd.js, require.js)` when fetched, else None."""
    base = base or widget_js_dir()
    embed, require = base / "html-manager" / "dist" / "embed-amd.js", base / "require.js"
    return (embed, require) if embed.is_file() and require.is_file() else None


def fetch_widget_js(base: Path | None = None) -> tuple[Path, Path]:
    """Get the widget renderer and require.js from the npm registry (`npm pack`)."""
    base = base or widget_js_dir()
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed (apt-get install npm); or pass --cdn.")
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", HTML_MANAGER, REQUIREJS], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        for tgz in Path(tmp).glob("*.tgz"):
            target = Path(tmp) / tgz.stem
            with tarfile.open(tgz) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(target, filter="data")
                else:  # Python < 3.11.4: npm tarballs from the registry
                    tar.extractall(target)
            if tgz.name.startswith("requirejs"):
                shutil.copy(target / "package" / "require.js", base / "require.js")
            else:
                shutil.rmtree(base / "html-manager", ignore_errors=True)
                shutil.copytree(target / "package", base / "html-manager")
    found = find_widget_js(base)
    assert found is not None
    return found


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@contextlib.contextmanager
def this_python_kernel() -> Iterator[str]:
    """A kernelspec, for the duration, that runs this interpreter (the dev venv)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "pandas-llm-annotate", "language": "python",
        }))
        old = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (tmp, old) if p)
        try:
            yield KERNEL_NAME
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old


def execute(path: Path, *, cwd: Path | None = None, timeout: int = 120) -> Any:
    """Run every cell of `path` in a fresh kernel; the notebook with its outputs and its
    widget state (`metadata.widgets`). Raises on the first failing cell."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    with this_python_kernel() as kernel:
        client = nbclient.NotebookClient(
            nb, kernel_name=kernel, timeout=timeout, store_widget_state=True,
            resources={"metadata": {"path": str(cwd or path.parent)}},
        )
        started = time.perf_counter()
        client.execute()
    nb.metadata.setdefault("pla", {})["seconds"] = round(time.perf_counter() - started, 1)
    return nb


def export_html(nb: Any, *, widgets: str = "auto", js: tuple[Path, Path] | None = None) -> str:
    """HTML of an executed notebook. `widgets`: "local" (the fetched renderer, see
    `--fetch-widget-js`; or `js`), "cdn", "static" (no widget state: the panels' HTML
    copy), or "auto" (local when fetched, else static)."""
    import copy

    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    exporter = HTMLExporter(template_name="lab")
    found = js or find_widget_js()
    if widgets == "auto":
        widgets = "local" if found else "static"
    if widgets == "local":
        if found is None:
            raise SystemExit("no local widget renderer: run with --fetch-widget-js or --cdn")
        exporter.widget_renderer_url = found[0].as_uri()
        exporter.require_js_url = found[1].as_uri()
    elif widgets == "static":
        nb.metadata.pop("widgets", None)
    body, _ = exporter.from_notebook_node(nb)
    return str(body)


def screenshot(html_path: Path, png_path: Path, *, chromium: str, width: int = 1200,
               height: int = 2000) -> None:
    """Render `html_path` in headless Chromium to `png_path`."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               f"--screenshot={png_path}", f"--window-size={width},{height}",
               html_path.resolve().as_uri()]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120)
    if not png_path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot: {' '.join(cmd)}")


def dump_dom(html_path: Path, *, chromium: str) -> str:
    """The page's DOM after its scripts ran (the widget renderer turns the saved widget
    state into elements such as `widget-progress`)."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
               html_path.resolve().as_uri()]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
    return done.stdout


def render(path: Path, out: Path, *, png: bool = True, widgets: str = "auto",
           height: int = 2000) -> dict[str, Path]:
    """Execute, export and screenshot one notebook into `out`; the files written."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    nb = execute(path)
    written = {"ipynb": out / path.name}
    nbformat.write(nb, written["ipynb"])
    written["html"] = out / f"{path.stem}.html"
    written["html"].write_text(export_html(nb, widgets=widgets), encoding="utf-8")
    if png:
        chromium = find_chromium()
        if chromium is None:
            print("chromium not found (apt-get install chromium): no PNG", file=sys.stderr)
        else:
            written["png"] = out / f"{path.stem}.png"
            screenshot(written["html"], written["png"], chromium=chromium, height=height)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "notebooks")
    parser.add_argument("--no-png", action="store_true", help="skip the Chromium screenshot")
    parser.add_argument("--height", type=int, default=2000, help="screenshot height, px")
    parser.add_argument("--cdn", action="store_true", help="load the widget renderer from unpkg")
    parser.add_argument("--static", action="store_true", help="no widgets: static panel copies")
    parser.add_argument("--fetch-widget-js", action="store_true",
                        help="npm pack the widget renderer into " + str(widget_js_dir()))
    args = parser.parse_args(argv)
    if args.fetch_widget_js:
        print("widget renderer:", *fetch_widget_js())
    widgets = "cdn" if args.cdn else "static" if args.static else "auto"
    for path in args.notebooks:
        written = render(path, args.out, png=not args.no_png, widgets=widgets,
                         height=args.height)
        print(path, "->", ", ".join(str(p) for p in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
