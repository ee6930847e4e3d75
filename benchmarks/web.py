"""The web page: how fast the gallery answers with 500 results, what a live page costs the daemon,
and the screenshots of docs/web.md and the README.

    python benchmarks/web.py                          # gallery timings and the daemon's cost
    python benchmarks/web.py --screenshots docs/images/web
    python benchmarks/web.py --skip-cost              # only the gallery (a minute)

Everything runs as real processes: ``styled web`` and ``styled serve`` on a spool in a temporary
folder, requests over HTTP, the screenshots in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium).

Gallery: 500 finished jobs (each a 1024 x 768 PNG result with its sheet, loss plot, report and
inputs), then the first page's HTML (median of 30 requests), the first page's 24 thumbnails on
first sight (made) and again (cached), and the queue's JSON.

Cost: the same render (examples/tubingen.jpg in the style of starry_night.jpg, 192 px, 60
iterations, one scale) run by the daemon ``--runs`` times with no page open and ``--runs`` times
with three live queue pages (server-sent event streams) open, in pairs whose order alternates; the
render seconds of each come from its report.json. Medians, and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parents[1]
CONTENT = REPO / "examples" / "tubingen.jpg"
STYLE = REPO / "examples" / "starry_night.jpg"
JOBS = 500
RESULT_SIZE = (1024, 768)
HTML_REPEATS = 30
LIVE_PAGES = 3
COST_SPEC = {"size": 192, "iterations": 60, "scales": 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def timed(url: str) -> float:
    started = time.perf_counter()
    get(url)
    return time.perf_counter() - started


def wait(predicate, timeout: float, what: str):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        get(url, timeout=2)
        return True
    except OSError:
        return False


def write_config(folder: Path, port: int) -> Path:
    data = {"inbox": "inbox", "outbox": "outbox", "failed": "failed", "work": "work", "settle_seconds": 0.2,
            "progress_seconds": 0.5, "checkpoint_seconds": 2.0, "library": ["library"],
            "web": {"port": port, "thumbnails": "thumbs"}}
    for key in ("inbox", "outbox", "failed", "work", "library"):
        (folder / key).mkdir(parents=True, exist_ok=True)
    shutil.copy(STYLE, folder / "library" / STYLE.name)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start(args: list[str], folder: Path, log: str) -> subprocess.Popen:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "styled.cli", *args], cwd=folder, env=environment,
                            stdout=(folder / log).open("wb"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def fill_outbox(outbox: Path, count: int) -> None:
    """``count`` finished jobs as the daemon delivers them, sharing their bytes through hard links."""
    model = outbox.parent / "model"
    (model / "inputs").mkdir(parents=True)
    with PILImage.open(CONTENT) as photo:
        photo.convert("RGB").resize(RESULT_SIZE).save(model / "result.png")
        photo.convert("RGB").resize((1200, 300)).save(model / "sheet.png")
    PILImage.new("RGB", (800, 500), "white").save(model / "loss.png")
    shutil.copy(CONTENT, model / "inputs" / CONTENT.name)
    shutil.copy(STYLE, model / "inputs" / STYLE.name)
    (model / "inputs" / "job.yaml").write_text(f"content: {CONTENT.name}\nstyle: [{STYLE.name}]\n")
    settings = {"content": CONTENT.name, "style": [STYLE.name], "output": "result.png", "size": 1024}
    for number in range(count):
        folder = outbox / f"print-{number:03d}"
        shutil.copytree(model, folder, copy_function=os.link)
        report = {"settings": settings, "inputs": {"content": CONTENT.name, "style": [STYLE.name]},
                  "job": {"name": folder.name, "worker": "cpu#1", "delivered": "2026-12-04T00:00:00+00:00"}}
        (folder / "report.json").write_text(json.dumps(report))
        os.utime(folder, (1_800_000_000 + number, 1_800_000_000 + number))
    shutil.rmtree(model)


def gallery_figures(folder: Path, url: str) -> None:
    page = get(url + "gallery").decode()
    thumbs = [line.split('src="', 1)[1].split('"', 1)[0] for line in page.splitlines() if '/thumb/' in line]
    html = [timed(url + "gallery") for _ in range(HTML_REPEATS)]
    first = [timed(url + thumb.lstrip("/")) for thumb in thumbs]
    cached = [timed(url + thumb.lstrip("/")) for thumb in thumbs]
    queue = [timed(url + "api/queue") for _ in range(HTML_REPEATS)]
    print(f"gallery with {JOBS} results: first page HTML {statistics.median(html) * 1000:.1f} ms median "
          f"(max {max(html) * 1000:.1f} ms, {HTML_REPEATS} requests)")
    print(f"  {len(thumbs)} thumbnails of {RESULT_SIZE[0]}x{RESULT_SIZE[1]} results: made {statistics.median(first) * 1000:.1f} "
          f"ms median each, cached {statistics.median(cached) * 1000:.1f} ms")
    print(f"  queue JSON {statistics.median(queue) * 1000:.1f} ms median")


def render_seconds(folder: Path, name: str) -> float:
    report = wait(lambda: json.loads((folder / "outbox" / name / "report.json").read_text())
                  if (folder / "outbox" / name / "report.json").exists() else None, 900, f"the job {name}")
    return float(report["seconds"])


def submit(folder: Path, name: str) -> None:
    subprocess.run([sys.executable, "-m", "styled.cli", "submit", str(CONTENT), str(STYLE), "--name", name,
                    "--config", str(folder / "config.yaml"), *[f"--set={k}={v}" for k, v in COST_SPEC.items()]],
                   check=True, capture_output=True)


class LivePages:
    """``count`` browsers' worth of /events streams, read until closed."""

    def __init__(self, url: str, count: int):
        self.responses = [urllib.request.urlopen(url + "events", timeout=600) for _ in range(count)]
        self.threads = [threading.Thread(target=self._drain, args=(response,), daemon=True)
                        for response in self.responses]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _drain(response) -> None:  # noqa: ANN001
        """Read the stream as a browser does, until close() ends it under the reader."""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            response.read()

    def close(self) -> None:
        for response in self.responses:
            response.close()


def cost_figures(folder: Path, url: str, runs: int) -> None:
    daemon = start(["serve", "--config", "config.yaml"], folder, "daemon.log")
    try:
        submit(folder, "warm-up")
        render_seconds(folder, "warm-up")
        alone, watched = [], []
        for run in range(runs):  # alternating which goes first, so that a drift hits both alike
            for watching in ((False, True) if run % 2 == 0 else (True, False)):
                name = f"{'watched' if watching else 'alone'}-{run}"
                pages = LivePages(url, LIVE_PAGES) if watching else None
                try:
                    submit(folder, name)
                    (watched if watching else alone).append(render_seconds(folder, name))
                finally:
                    if pages is not None:
                        pages.close()
    finally:
        stop(daemon)
    a, w = statistics.median(alone), statistics.median(watched)
    print(f"render of {COST_SPEC} by the daemon: {a:.2f} s median with no page open, {w:.2f} s with "
          f"{LIVE_PAGES} live pages open ({runs} runs each, in alternating pairs): ratio {w / a:.3f}")
    print(f"  alone {[round(s, 2) for s in alone]}  watched {[round(s, 2) for s in watched]}")


def screenshots(folder: Path, url: str, target: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    target.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    daemon = start(["serve", "--config", "config.yaml"], folder, "daemon-shots.log")
    try:
        subprocess.run([sys.executable, "-m", "styled.cli", "submit", str(CONTENT), str(STYLE), "--name",
                        "tubingen", "--config", str(folder / "config.yaml"), "--set", "size=384",
                        "--set", "iterations=100"], check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "styled.cli", "submit", str(CONTENT), str(STYLE), "--name",
                        "tubingen-preserve", "--config", str(folder / "config.yaml"), "--set", "size=384",
                        "--set", "iterations=100", "--set", "preserve_colors=true"], check=True,
                       capture_output=True)
        driver.set_window_size(1200, 1000)
        driver.get(url)
        wait(lambda: driver.execute_script(
            "const e = document.querySelector('#running img.latest');"
            "const bar = document.querySelector('#running progress');"
            "return e && e.naturalWidth >= 192 && bar && bar.value >= 40"), 900,
             "a running job at its second scale with its checkpoint image")
        time.sleep(1)
        driver.save_screenshot(str(target / "queue.png"))
        wait(lambda: (folder / "outbox" / "tubingen" / "report.json").exists(), 900, "the job delivered")
        driver.get(url + "jobs/tubingen")
        time.sleep(1)
        driver.save_screenshot(str(target / "job.png"))
        driver.set_window_size(400, 860)
        driver.get(url + "submit")
        driver.find_element(By.ID, "content").send_keys(str(CONTENT))
        driver.find_element(By.ID, "style_weight").send_keys("-5")
        driver.find_element(By.ID, "send").click()
        wait(lambda: driver.find_elements(By.ID, "style_weight-error"), 60, "the field error")
        driver.execute_script("document.getElementById('style_weight').scrollIntoView({block: 'center'})")
        driver.save_screenshot(str(target / "phone-form.png"))
    finally:
        driver.quit()
        stop(daemon)
    for name in ("queue.png", "job.png", "phone-form.png"):
        with PILImage.open(target / name) as shot:
            shot.convert("RGB").save(target / name, optimize=True)
    print(f"screenshots in {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="renders with and without live pages (default 5)")
    parser.add_argument("--skip-cost", action="store_true", help="only the gallery figures")
    parser.add_argument("--screenshots", type=Path, help="write the docs' screenshots into this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="styled-web-bench-") as temporary:
        folder = Path(temporary)
        port = free_port()
        write_config(folder, port)
        url = f"http://127.0.0.1:{port}/"
        web = start(["web", "--config", "config.yaml"], folder, "web.log")
        try:
            wait(lambda: answers(url + "api/queue"), 60, "styled web")
            if args.screenshots:
                screenshots(folder, url, args.screenshots.resolve())
            fill_outbox(folder / "outbox", JOBS)
            gallery_figures(folder, url)
            if not args.skip_cost:
                cost_figures(folder, url, args.runs)
        finally:
            stop(web)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
