"""JupyterLab 4 and headless Chromium, for the tests that look at the real front-end.

`jupyter_lab(root, home)` starts `python -m jupyterlab` on 127.0.0.1 (a free port, a
token, no browser) with its config, data, runtime, IPython and workspace folders under
`home`, so nothing of the user's is read or written, and nothing it does reaches past
loopback (no news feed, no update check, no extension listing). The kernel is this
interpreter with this checkout first on its path. On exit the server is asked to shut
down (it stops its kernels), then its process group is killed, and any process still
naming `home` (a kernel) is killed by pid.

`chromium(profile)` drives Debian's chromium through its chromedriver with selenium,
both by path (`$PLA_CHROMIUM`, `$PLA_CHROMEDRIVER` to use others): selenium-manager is
never asked to find or fetch anything.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("PLA_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("PLA_CHROMEDRIVER", "/usr/bin/chromedriver"))
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-default-apps",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)
T = TypeVar("T")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} not found: apt-get install chromium chromium-driver"
    for module in ("jupyterlab", "selenium", "ipywidgets", "ipykernel"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install -e '.[dev,browser]'"
    return None


def wait_for(what: str, check: Callable[[], T | None], timeout: float,
             detail: Callable[[], str] = lambda: "") -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                                 f"{detail()}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pids_naming(text: str) -> list[int]:
    """Processes (other than this one) whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone, or not ours to read
            continue
        if text.encode() in cmdline:
            found.append(int(entry.name))
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Lab:
    port: int
    token: str
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}?token={self.token}"

    def request(self, path: str, method: str = "GET") -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read(1 << 16)
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def log_tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- jupyter lab log ({self.log}) ---\n{text[-chars:]}"


@contextlib.contextmanager
def jupyter_lab(root: Path, home: Path, timeout: float = 60) -> Iterator[Lab]:
    """A JupyterLab server serving `root`, everything of its own under `home`."""
    dirs = {name: home / name for name in ("config", "data", "runtime", "ipython",
                                          "workspaces", "settings")}
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    notices = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notices.mkdir(parents=True, exist_ok=True)  # no "get Jupyter news?" toast
    (notices / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                      if p),
    }
    lab = Lab(port=free_port(), token=secrets.token_hex(16), log=home / "jupyter-lab.log")
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
        f"--port={lab.port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={lab.token}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run the notebook's cells
        "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--ServerApp.terminals_enabled=False",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
    ]
    with lab.log.open("wb") as log:
        server = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"jupyter lab exited with {server.returncode}\n"
                                     f"{lab.log_tail()}")
            return lab.request("api/status") == 200

        wait_for("jupyter lab to answer", up, timeout, lab.log_tail)
        yield lab
    finally:
        if server.poll() is None:
            lab.request("api/shutdown", method="POST")  # stops the kernels too
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        kill_pids(pids_naming(str(home)))  # a kernel that outlived its server


@contextlib.contextmanager
def chromium(profile: Path, width: int = 1280, height: int = 1500) -> Iterator[Any]:
    """A headless Chromium under selenium; every chromium process naming `profile` is
    gone on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER),
                      log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_script_timeout(30)
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
        kill_pids(pids_naming(str(profile)))
