"""End to end, in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium): a
real ``styled web`` process and a real daemon rendering tiny jobs."""

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
import yaml

from daemon_support import DaemonProcess, folders, make_image, run_cli, wait_for, write_config, write_job_folder

pytest.importorskip("starlette")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: CI sets this: there a missing browser is a failure, not a skip.
REQUIRE_BROWSER = os.environ.get("STYLED_REQUIRE_BROWSER") == "1"
PAGE_SECONDS = 60.0
RENDER_SECONDS = 240.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class WebProcess:
    """``python -m styled.cli web --config FILE`` as a child process."""

    def __init__(self, config_path: Path, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = config_path.parent / "web.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "styled.cli", "web", "--config", str(config_path)],
                                        cwd=config_path.parent, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for(lambda: answers(self.url + "/api/queue") or self._dead(), PAGE_SECONDS, "the web page")

    def _dead(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"styled web exited ({self.process.returncode}):\n{self.log_path.read_text()}")
        return False

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._log.close()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A daemon and a web page on one spool, both real processes."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if REQUIRE_BROWSER:
            pytest.fail(f"chromium ({CHROMIUM}) and chromedriver ({CHROMEDRIVER}) are needed: "
                        "apt-get install chromium chromium-driver")
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    folder = tmp_path_factory.mktemp("studio")
    config = write_config(folder, web={"port": free_port(), "thumbnails": "thumbs"}, checkpoint_seconds=0.3,
                          progress_seconds=0.1)
    daemon = DaemonProcess(config)
    web = WebProcess(config, yaml.safe_load(config.read_text())["web"]["port"])
    try:
        daemon.wait_for_log("watching")
        yield {"folder": folder, "url": web.url, "daemon": daemon}
    finally:
        assert web.stop() == 0, "styled web stops cleanly on SIGTERM"
        daemon.signal(signal.SIGTERM)
        daemon.wait()
        daemon.close()


@pytest.fixture(scope="module")
def browser(studio):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def find(driver, css: str):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def read(driver, css: str, what: str = "textContent"):
    """A property of the first element matching ``css``, or None, in one step (the live queue
    replaces its elements, so a found element may be gone by the next call)."""
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e[arguments[1]] : null",
                                 css, what)


def test_submit_watch_the_progress_bar_move_and_see_the_result(studio, browser, tmp_path):
    photo = make_image(tmp_path / "harbour photo.png", size=(96, 72))
    painting = make_image(tmp_path / "painting.png", "style/starry_night.jpg", size=(64, 48))
    browser.get(studio["url"] + "/submit")
    browser.find_element(By.ID, "content").send_keys(str(photo))
    browser.find_element(By.ID, "style").send_keys(str(painting))
    browser.find_element(By.ID, "size").send_keys("64")
    browser.find_element(By.ID, "more").send_keys("iterations: 400\nscales: 1\n")
    browser.find_element(By.ID, "send").click()
    wait_for(lambda: "submitted=harbour_photo" in browser.current_url, PAGE_SECONDS, "the queue after submitting")
    browser.execute_script("window.stillTheSamePage = true")
    bar = "#running li[data-name='harbour_photo'] progress"
    first = wait_for(lambda: read(browser, bar, "value"), RENDER_SECONDS, "the job's progress bar to start")
    later = wait_for(lambda: (read(browser, bar, "value") or 0) > first and read(browser, bar, "value"),
                     RENDER_SECONDS, "the progress bar to move")
    assert later > first
    wait_for(lambda: read(browser, "#running img.latest", "naturalWidth"), RENDER_SECONDS,
             "the latest checkpoint image")
    assert "iteration" in read(browser, "#running .detail") and "cpu#1" in read(browser, "#running")
    link = wait_for(lambda: find(browser, "#done a[href='/jobs/harbour_photo']"), RENDER_SECONDS,
                    "the result in the done list")
    assert browser.execute_script("return window.stillTheSamePage === true"), "updated live, not reloaded"
    link.click()
    wait_for(lambda: browser.current_url.endswith("/jobs/harbour_photo"), PAGE_SECONDS, "the result page")
    result = browser.find_element(By.ID, "result")
    wait_for(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", result),
             PAGE_SECONDS, "the result image to load")
    assert browser.execute_script("return arguments[0].naturalWidth", result) == 64
    assert "style_weight" in browser.find_element(By.CSS_SELECTOR, "table.settings").text


def test_a_bad_value_gets_a_clear_error_beside_its_field(studio, browser, tmp_path):
    photo = make_image(tmp_path / "photo.png")
    painting = make_image(tmp_path / "painting.png", "style/the_scream.jpg")
    browser.get(studio["url"] + "/submit")
    browser.find_element(By.ID, "content").send_keys(str(photo))
    browser.find_element(By.ID, "style").send_keys(str(painting))
    browser.find_element(By.ID, "style_weight").send_keys("-5")
    browser.find_element(By.ID, "send").click()
    error = wait_for(lambda: find(browser, "#style_weight-error"), PAGE_SECONDS, "the field's error")
    assert "style_weight" in error.text and "-5" in error.text
    assert browser.find_element(By.ID, "style_weight").get_attribute("value") == "-5", "what was typed is kept"
    assert folders(studio["folder"] / "inbox") == []


def test_retry_a_failed_job_with_edited_settings(studio, browser):
    folder = studio["folder"]
    spec = {"content": "photo.png", "style": "style.png", "size": 32, "scales": 1, "iterations": 2,
            "style_weight": -1}
    write_job_folder(folder / "inbox", "mistake", spec)
    wait_for(lambda: "mistake" in folders(folder / "failed"), RENDER_SECONDS, "the job to fail")
    browser.get(studio["url"] + "/")
    wait_for(lambda: find(browser, "#failed a[href='/failed/mistake']"), PAGE_SECONDS, "the failure listed").click()
    assert browser.find_element(By.ID, "error-key").text == "style_weight"
    spec_box = browser.find_element(By.ID, "spec")
    assert "style_weight: -1" in spec_box.get_attribute("value")
    spec_box.clear()
    spec_box.send_keys(yaml.safe_dump({**spec, "style_weight": 50}, sort_keys=False))
    browser.find_element(By.ID, "retry-edited").click()
    wait_for(lambda: "retried=mistake" in browser.current_url, PAGE_SECONDS, "the queue after the retry")
    wait_for(lambda: find(browser, "#done a[href='/jobs/mistake']"), RENDER_SECONDS, "the retried job delivered")
    assert "mistake" not in folders(folder / "failed")


def test_styled_serve_web_serves_the_page_beside_the_daemon(tmp_path):
    port = free_port()
    config = write_config(tmp_path, web={"port": port})
    with DaemonProcess(config, "--web") as daemon:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/api/queue") or daemon._dead("the page"),
                 PAGE_SECONDS, "the page of styled serve --web")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=10) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            assert events.readline() == b"event: queue\n" and b'"daemon": true' in events.readline()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    assert not answers(f"http://127.0.0.1:{port}/api/queue"), "the page stopped with the daemon"


def test_styled_web_refuses_to_listen_beyond_this_machine_without_a_token(tmp_path):
    config = write_config(tmp_path, web={"host": "0.0.0.0", "port": free_port()})
    started = time.monotonic()
    done = run_cli("web", "--config", str(config))
    assert done.returncode == 2 and "no token is set" in done.stderr and "web.host" in done.stderr
    assert time.monotonic() - started < PAGE_SECONDS


def test_the_pages_fit_a_phone_and_work_without_javascript(studio, tmp_path):
    """Every page at a phone's width has no sideways scrolling, and with scripts off the pages and
    the form still work."""
    if not folders(studio["folder"] / "outbox"):  # run alone: render a result to show
        write_job_folder(studio["folder"] / "inbox", "for-the-phone")
    wait_for(lambda: folders(studio["folder"] / "outbox"), RENDER_SECONDS, "a result to show")
    name = folders(studio["folder"] / "outbox")[0]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=390,844",
                     "--blink-settings=scriptEnabled=false"):
        options.add_argument(argument)
    phone = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    try:
        for path in ("/", "/gallery", f"/jobs/{name}", "/submit"):
            phone.get(studio["url"] + path)
            width = phone.get_window_size()["width"]
            scroll = phone.find_element(By.TAG_NAME, "html").get_property("scrollWidth")
            assert scroll <= width, f"{path} is {scroll} px wide on a {width} px phone"
        phone.get(studio["url"] + "/")
        assert phone.find_element(By.CSS_SELECTOR, f"#done a[href='/jobs/{name}']"), "listed without scripts"
        photo = make_image(tmp_path / "no-script.png")
        phone.get(studio["url"] + "/submit")
        phone.find_element(By.ID, "content").send_keys(str(photo))
        phone.find_element(By.ID, "size").send_keys("99999")
        phone.find_element(By.ID, "send").click()
        error = wait_for(lambda: find(phone, "#size-error"), PAGE_SECONDS, "the size error without scripts")
        assert "size" in error.text
    finally:
        phone.quit()


def submit_form(driver, css: str, **fields) -> None:
    """Fill a form's fields and submit it in one step (the live queue may replace it between steps)."""
    driver.execute_script("const form = document.querySelector(arguments[0]);"
                          "for (const [name, value] of Object.entries(arguments[1])) form.elements[name].value = value;"
                          "form.querySelector('button').click();", css, fields)


def test_cancel_and_priority_from_the_queue_and_the_job_page(studio, browser):
    folder = studio["folder"]
    inbox, failed = folder / "inbox", folder / "failed"
    long_spec = {"content": "photo.png", "style": "style.png", "size": 48, "scales": 1, "iterations": 3000}
    quick_spec = {"content": "photo.png", "style": "style.png", "size": 32, "scales": 1, "iterations": 2}
    write_job_folder(inbox, "busy", long_spec)
    browser.get(studio["url"] + "/")
    wait_for(lambda: read(browser, "#running li[data-name='busy'] .detail") and "iteration" in
             read(browser, "#running li[data-name='busy'] .detail"), RENDER_SECONDS, "the long job rendering")
    write_job_folder(inbox, "other", quick_spec)
    write_job_folder(inbox, "later", quick_spec)  # arrives second: listed second at equal priority
    wait_for(lambda: find(browser, "#waiting li[data-name='later'] form.priority"), PAGE_SECONDS, "later waiting")
    assert read(browser, "#waiting li.job .name") == "other"

    submit_form(browser, "#waiting li[data-name='later'] form.priority", priority="4")
    wait_for(lambda: "reprioritised=later" in browser.current_url, PAGE_SECONDS, "the queue after the change")
    assert "priority: 4" in (inbox / "later" / "job.yaml").read_text()
    wait_for(lambda: read(browser, "#waiting li.job .name") == "later", PAGE_SECONDS,
             "the higher priority listed (and taken) first")
    wait_for(lambda: browser.execute_script(
        "return document.querySelector(\"#waiting li[data-name='later'] input[name=priority]\").value") == "4",
        PAGE_SECONDS, "the new priority shown")

    browser.get(studio["url"] + "/jobs/other")
    assert "waiting in the inbox" in browser.find_element(By.ID, "where").text.lower()
    browser.find_element(By.ID, "cancel").click()
    wait_for(lambda: "other" in folders(failed), RENDER_SECONDS, "the waiting job cancelled")
    assert '"cancelled"' in (failed / "other" / "error.json").read_text()

    browser.get(studio["url"] + "/")
    wait_for(lambda: find(browser, "#running li[data-name='busy'] form.cancel"), PAGE_SECONDS, "busy's Cancel")
    submit_form(browser, "#running li[data-name='busy'] form.cancel")
    wait_for(lambda: "busy" in folders(failed), RENDER_SECONDS, "the running job cancelled")
    assert (failed / "busy" / "checkpoint.npz").is_file(), "a cancelled render keeps its checkpoint"
    wait_for(lambda: find(browser, "#done a[href='/jobs/later']"), RENDER_SECONDS, "the waiting job delivered")
    without_token = run_cli("status", "--config", str(folder / "config.yaml")).stdout
    assert "busy: cancelled at" in without_token
