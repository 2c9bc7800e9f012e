"""Fixtures for the browser tests (issue 9 item 7): Debian's chromium driven by Playwright, a home
holding a finished smoke run, and the two UIs over that home on free loopback ports.

Playwright's own browser download fails here, so the tests launch the system's ``chromium``
(``apt-get install -y chromium`` when it is missing; they skip, saying why, only when that fails).
Each UI runs in its own process group and is torn down with every process it started. Timeouts are
sized for a loaded 2-core machine: a step process alone imports dagster and polars for seconds.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
# no sandbox: CI containers run as root; no background traffic: the machine reaches no network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
SMOKE_RUN_S = 3600  # `recpie run --profile smoke`: the real SmolLM2 and MiniLM; 27 min at load 10 on 2 cores
UI_START_S = 300  # `recpie ui` until the webserver answers (dagster dev, its daemon, the code server)
MLFLOW_START_S = 180  # `mlflow ui` until /health answers
PAGE_WAIT_MS = 180_000  # a selector's wait: the first GraphQL queries load the whole code location
VIEWPORT = {"width": 1600, "height": 1000}
BIN = Path(sys.executable).parent  # the venv's console scripts (recpie, mlflow)

SCREENSHOTS: list[Path] = []  # what the tests saved, listed in the terminal summary


def home_env(home: Path) -> dict[str, str]:
    """The environment of a command on ``home``: its own Dagster instance and MLflow store, the
    models offline, and nothing inherited that would pick another profile, source or server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECPIE_", "DAGSTER_", "MLFLOW_"))}
    env.update(RECPIE_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    return env


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick; the server binds it right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A command (a server, or the smoke run) in its own process group, its output in a log file;
    stopped with all it started."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path, port: int):
        self.name, self.cmd, self.env, self.log = name, cmd, env, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_until_up(self, path: str, timeout_s: float) -> float:
        """Seconds until ``GET path`` answers 200; fails with the log's tail when the server exits
        or the time runs out."""
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before answering "
                                     f"{self.url}{path}; last lines of {self.log}:\n{tail(self.log)}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                    if resp.status == 200:
                        return time.monotonic() - t0
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException):
                pass
            if time.monotonic() - t0 > timeout_s:
                raise AssertionError(f"{self.name} did not answer {self.url}{path} within {timeout_s} s; "
                                     f"last lines of {self.log}:\n{tail(self.log)}")
            time.sleep(0.5)  # polling a socket, not waiting on the page: the browser waits on selectors

    def stop(self) -> None:
        """SIGTERM to the group (dagster dev stops its daemon and code server), then SIGKILL to
        whatever of the process tree is left after 30 s, run workers included."""
        if self.proc is None:
            return
        try:
            procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        self._signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=30)
        if alive:
            self._signal(signal.SIGKILL)
            for p in alive:  # one that left the group
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(alive, timeout=10)
        self.proc.wait(timeout=10)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium, installed with apt-get when missing; skips (saying why) if that fails."""
    found = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and `apt-get install -y chromium` needs apt-get as root here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    for cmd in (install, ["apt-get", "update"], install):  # a stale package list: update once, retry
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        found = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
        if found:
            return found
    last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    pytest.skip(f"chromium is not installed and `apt-get install -y chromium` failed: {last[0]}")


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PAGE_WAIT_MS)  # assertions wait as long as actions (their default: 5 s)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def smoke_home(tmp_path_factory) -> Path:
    """A home holding a finished `recpie run --profile smoke` (the real CLI, Dagster and MLflow)."""
    home = tmp_path_factory.mktemp("ui-home")
    log = home / "smoke-run.log"  # a file, not a pipe: Dagster's log mirrors may outlive the command
    run = Service("recpie run", [str(BIN / "recpie"), "--home", str(home), "run", "--profile", "smoke"],
                  home_env(home), log, port=0).start()
    try:
        rc = run.proc.wait(timeout=SMOKE_RUN_S)
    except subprocess.TimeoutExpired:
        run.stop()
        pytest.fail(f"the smoke run did not end within {SMOKE_RUN_S} s; last lines of {log}:\n{tail(log)}")
    assert rc == 0, f"the smoke run failed (rc {rc}); last lines of {log}:\n{tail(log)}"
    return home


@pytest.fixture(scope="session")
def dagster_ui(smoke_home):
    """`recpie ui` (which execs `dagster dev`) on a free loopback port; yields its base URL."""
    port = free_port()
    ui = Service("dagster dev", [str(BIN / "recpie"), "--home", str(smoke_home), "ui", "--port", str(port)],
                 home_env(smoke_home), smoke_home / "dagster-dev.log", port).start()
    try:
        ui.wait_until_up("/server_info", UI_START_S)
        yield ui.url
    finally:
        ui.stop()


@pytest.fixture(scope="session")
def mlflow_ui(smoke_home):
    """`mlflow ui` as `make mlflow` starts it (one worker, no job runner, the home's SQLite store), on a free port."""
    port = free_port()
    store = f"sqlite:///{smoke_home / 'mlflow' / 'mlflow.db'}"
    ui = Service("mlflow ui", [str(BIN / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1", "--backend-store-uri", store],
                 {**home_env(smoke_home), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                 smoke_home / "mlflow-ui.log", port).start()
    try:
        ui.wait_until_up("/health", MLFLOW_START_S)
        yield ui.url
    finally:
        ui.stop()


@pytest.fixture
def page(browser, smoke_home, request):
    """A fresh browser page; on a failed test, a screenshot of where it stood."""
    context = browser.new_context(viewport=VIEWPORT)
    # dagster dev's "Join the Dagster community" dialog, dismissed as its Skip button would
    context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
    pg = context.new_page()
    pg.set_default_timeout(PAGE_WAIT_MS)
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        screenshot(pg, smoke_home, f"failed-{request.node.name}")
    context.close()


def screenshot(page, home: Path, name: str) -> Path:
    """The page as it looks now, saved as ``<home>/reports/ui-<name>.png``."""
    path = home / "reports" / f"ui-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    SCREENSHOTS.append(path)
    return path


@pytest.fixture
def shoot(page, smoke_home):
    """``shoot(name)``: a screenshot of the test's page into the home's reports/ folder."""
    return lambda name: screenshot(page, smoke_home, name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so that ``page`` can tell a failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOTS:
        terminalreporter.section("browser screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(str(path))
