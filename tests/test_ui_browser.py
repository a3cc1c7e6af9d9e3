"""What users see: the MLflow UI over a fresh run and a small sweep, read in headless Chromium.

Runs `mlflow ui` on 127.0.0.1 the way `make ui` does and drives Debian's Chromium with
Playwright (no browser download). Screenshots of each page checked go to
test-artifacts/ui/. Needs the `ui-test` extra and /usr/bin/chromium, which .ci/run installs;
elsewhere the test is skipped, but under CI a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from backprop_lab import ui
from backprop_lab.tracking import open_experiment

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; the rest keep it from calling out of this machine.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
FRESH = ["model.widths=[8,4]", "optimizer.steps=20"]
FRESH_NAME = "widths=[8,4] steps=20"
SWEEP = ["-m", "optimizer.lr=0.05,0.2", "optimizer.steps=10"]
CHILD_NAMES = ("lr=0.05 steps=10", "lr=0.2 steps=10")
RUN_PICTURES = ("loss_curve.png", "gradient_norms.png", "dead_relu.png", "shapes.png")


def _playwright():
    """The sync Playwright API, or a skip (a failure under CI) when it or Chromium is missing."""
    missing = None if Path(CHROMIUM).is_file() else f"{CHROMIUM} (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = missing or "playwright (pip install -e '.[ui-test]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test, but {missing} is missing; see .ci/run")
        pytest.skip(f"needs {missing}")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _door(args: list[str], uri: str, cwd: Path) -> subprocess.Popen:
    """`python -m backprop_lab ARGS` recording into `uri`, as a user would type it."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, BACKPROP_LAB_ROOT=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "backprop_lab", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, what: str) -> None:
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, f"{what} failed:\n{output}"


def _wait_until_up(base: str, server: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow ui exited early: " + server.stdout.read()
        try:
            with urllib.request.urlopen(base + "health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail("mlflow ui did not answer /health within its deadline")


def _stop(server: subprocess.Popen) -> None:
    """End the server and the worker it spawned: they share the session it was started in."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A store with a fresh run and a two-job sweep, served by `mlflow ui` on a free port.

    The store exists before the server starts (so only one process creates its tables); the
    runs are recorded while the server boots.
    """
    sync_playwright = _playwright()
    folder = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client, experiment_id = open_experiment(uri, "backprop-lab")
    port = _free_port()
    env = dict(ui.server_env(), MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    server = subprocess.Popen(ui.command(uri, "127.0.0.1", port), env=env, cwd=folder,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        fresh, sweep = _door(FRESH, uri, folder), _door(SWEEP, uri, folder)
        _finish(fresh, "the fresh run")
        _finish(sweep, "the sweep")
        base = f"http://127.0.0.1:{port}/"
        _wait_until_up(base, server, time.monotonic() + 90)
        yield sync_playwright, base, client, experiment_id, ui.addresses(uri, "127.0.0.1", port)
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def page(served):
    """One Chromium page with a fresh profile; requests off this machine are refused."""
    sync_playwright, base, *_ = served
    SHOTS.mkdir(parents=True, exist_ok=True)
    profile = SHOTS.parent / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1500, "height": 1000})
        context.route("**/*", lambda route: route.continue_()
                      if route.request.url.startswith(base) else route.abort())
        context.set_default_timeout(30_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def _runs(served):
    _, _, client, experiment_id, _ = served
    runs = client.search_runs([experiment_id])
    parents = {r.data.tags.get("mlflow.parentRunId") for r in runs} - {None}
    assert len(parents) == 1, "the sweep should have filed its jobs under one parent run"
    parent = next(r for r in runs if r.info.run_id in parents)
    fresh = next(r for r in runs if r.info.run_name == FRESH_NAME)
    return parent, fresh


def test_make_ui_address_lists_runs_by_name_and_the_sweep_nests_its_jobs(served, page):
    addresses = served[4]
    parent, _ = _runs(served)
    page.goto(addresses[0].split(": ", 1)[1])  # the line `make ui` prints for the project
    page.get_by_role("link", name=FRESH_NAME, exact=True).wait_for()
    assistant = page.get_by_role("button", name="Close")
    if assistant.count():
        assistant.first.click()  # MLflow's assistant panel: closed, the table has the room
    page.get_by_role("link", name=parent.info.run_name, exact=True).wait_for()
    for child in CHILD_NAMES:  # jobs stay folded under their parent until it is opened
        assert page.get_by_role("link", name=child, exact=True).count() == 0

    row = page.locator(f"[role=row][row-id='{parent.info.run_id}']").first
    row.locator("button").first.click()
    indices = {}
    for child in CHILD_NAMES:
        link = page.get_by_role("link", name=child, exact=True)
        link.wait_for()
        indices[child] = int(link.locator("xpath=ancestor::*[@role='row']").first
                             .get_attribute("row-index"))
    parent_index = int(row.get_attribute("row-index"))
    assert sorted(indices.values()) == [parent_index + 1, parent_index + 2]
    page.screenshot(path=SHOTS / "runs.png")


def test_a_run_page_shows_params_the_loss_metric_and_shape_tags(served, page):
    _, fresh = _runs(served)
    page.goto(f"{served[1]}#/experiments/{served[3]}/runs/{fresh.info.run_id}"
              "?workflowType=machine_learning")
    page.get_by_role("heading", name=FRESH_NAME).wait_for()
    page.get_by_role("link", name="train/loss", exact=True).wait_for()  # the metrics table
    page.get_by_placeholder("Search parameters").fill("optimizer.")
    for key, value in (("optimizer.lr", "0.1"), ("optimizer.steps", "20")):
        row = page.locator("tr, [role=row]", has_text=key).first
        row.wait_for()
        assert value in row.inner_text(), row.inner_text()
    for key in ("shape.layer2.dweights", "shape.layer1.dweights", "data.shape"):
        page.get_by_text(key, exact=True).wait_for()
    assert page.get_by_text("(3, 50) @ (50, 8) -> (3, 8)").count() == 1
    page.screenshot(path=SHOTS / "run.png")


def _open_artifacts(page, base, experiment_id, run_id):
    page.goto(f"{base}#/experiments/{experiment_id}/runs/{run_id}/artifacts"
              "?workflowType=machine_learning")
    page.get_by_text("plots", exact=True).first.wait_for()


def _preview(page, path: str) -> None:
    """Click an image artifact and wait until the UI shows it, decoded, beside the tree."""
    page.get_by_text(path.rsplit("/", 1)[-1], exact=True).click()
    page.get_by_text(path, exact=True).wait_for()  # the preview's heading
    page.wait_for_function(
        "() => [...document.images].some(i => i.src.startsWith('blob:') && i.naturalWidth > 300)")


def test_the_artifacts_hold_the_pictures_and_the_shape_table(served, page):
    _, fresh = _runs(served)
    _open_artifacts(page, served[1], served[3], fresh.info.run_id)
    page.get_by_text("shapes.csv", exact=True).wait_for()
    page.get_by_text("plots", exact=True).first.click()
    for name in RUN_PICTURES:
        page.get_by_text(name, exact=True).wait_for()
    _preview(page, "plots/shapes.png")
    page.screenshot(path=SHOTS / "artifacts.png")


def test_the_sweep_parent_carries_the_comparison_plots(served, page):
    parent, _ = _runs(served)
    comparison = {a.path.split("/")[-1]
                  for a in served[2].list_artifacts(parent.info.run_id, "plots")}
    assert {"loss_curves.png", "final_loss_by_optimizer.lr.png"} <= comparison
    _open_artifacts(page, served[1], served[3], parent.info.run_id)
    page.get_by_text("plots", exact=True).first.click()
    for name in sorted(comparison):
        page.get_by_text(name, exact=True).wait_for()
    _preview(page, "plots/loss_curves.png")
    page.screenshot(path=SHOTS / "sweep_parent.png")
