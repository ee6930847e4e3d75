"""The page's routes through Starlette's test client, on a spool laid out as the daemon lays it out."""

from __future__ import annotations

import asyncio
import html
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image as PILImage

from daemon_support import make_image, write_config
from styled.daemon.config import load_daemon_config
from styled.daemon.state import JobState, Status, write_state
from styled.errors import ConfigError

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from styled.web.app import create_app  # noqa: E402
from styled.web.guard import CSRF_COOKIE, TOKEN_COOKIE, page_token  # noqa: E402
from styled.web.server import make_server  # noqa: E402

TOKEN = "a-long-enough-test-token-0123456789"


def deliver(outbox: Path, name: str, size: tuple[int, int] = (64, 48)) -> Path:
    """outbox/NAME as the daemon delivers it: result, sheet, loss plot, report.json, inputs/."""
    folder = outbox / name
    make_image(folder / "inputs" / "photo.png")
    make_image(folder / "inputs" / "style.png", "style/starry_night.jpg")
    (folder / "inputs" / "job.yaml").write_text("content: photo.png\nstyle: style.png\n")
    make_image(folder / "result.png", size=size)
    make_image(folder / "sheet.png", size=(96, 32))
    make_image(folder / "loss.png", size=(64, 48))
    report = {"settings": {"content": "photo.png", "style": ["style.png"], "output": "result.png", "size": 64,
                           "style_weight": 100.0},
              "inputs": {"content": "photo.png", "style": ["style.png"]}, "seconds": 1.5, "device": "cpu",
              "precision": "float32", "job": {"name": name, "worker": "cpu#1", "delivered": "2026-12-04T01:00:00"}}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def fail(failed: Path, name: str, spec: str = "content: photo.png\nstyle: style.png\nstyle_weight: -1\n") -> Path:
    """failed/NAME as the daemon leaves it: error.txt, error.json (with key, line, hint), inputs/."""
    folder = failed / name
    make_image(folder / "inputs" / "photo.png")
    make_image(folder / "inputs" / "style.png", "style/starry_night.jpg")
    (folder / "inputs" / "job.yaml").write_text(spec)
    error = {"error": "job_spec", "message": "style_weight must be at least 0, got -1", "file": "job.yaml",
             "key": "style_weight", "line": 3, "hint": "give a weight such as 100", "text": "job.yaml: ...",
             "job": {"name": name}}
    (folder / "error.json").write_text(json.dumps(error))
    (folder / "error.txt").write_text("job.yaml, line 3, key 'style_weight': style_weight must be at least 0\n")
    return folder


def running(work: Path, name: str) -> Path:
    folder = work / name
    folder.mkdir(parents=True)
    write_state(folder / "state.json", JobState(id="1", name=name, kind="folder", spec="job.yaml", source="x",
                                                status=Status.RENDERING, attempts=1, worker="cpu#1"))
    (folder / "progress.json").write_text(json.dumps({"percent": 42.0, "scale": 1, "scales": 2, "iteration": 21,
                                                      "iterations": 50, "eta": 12.0}))
    make_image(folder / "preview.png")
    make_image(folder / "latest.png")
    (folder / "checkpoint.npz").write_bytes(b"private")
    return folder


@pytest.fixture
def spool(tmp_path):
    config_path = write_config(tmp_path, library=["library"], web={"thumbnails": "thumbs"})
    make_image(tmp_path / "library" / "painting.png", "style/the_scream.jpg")
    return load_daemon_config(config_path)


@pytest.fixture
def client(spool):
    with TestClient(create_app(spool, None), base_url="http://127.0.0.1") as client:
        yield client


def csrf_of(client: TestClient) -> str:
    client.get("/submit")
    return client.cookies[CSRF_COOKIE]


def image_bytes(source: str = "content/tubingen.jpg", size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


# --- reading ----------------------------------------------------------------------------------------


def test_the_queue_shows_waiting_running_done_and_failed_with_progress_and_worker(spool, client):
    (spool.inbox / "waiting-job").mkdir()
    (spool.inbox / "waiting-job" / "job.yaml").write_text("content: a.png\n")
    running(spool.work, "busy")
    deliver(spool.outbox, "finished")
    fail(spool.failed, "broken")
    page = client.get("/").text
    assert "waiting-job" in page and "busy" in page and "finished" in page and "broken" in page
    assert 'value="42.0"' in page and "scale 1/2 · iteration 21/50" in page and "cpu#1" in page
    queue = client.get("/api/queue").json()
    job = queue["running"][0]
    assert job["percent"] == 42.0 and job["preview"].startswith("/file/work/busy/preview.png?v=")
    assert job["latest"].startswith("/file/work/busy/latest.png?v=")
    assert client.get(job["latest"]).headers["content-type"] == "image/png"
    assert [j["name"] for j in queue["done"]] == ["finished"] and queue["failed"][0]["name"] == "broken"
    assert "/file/" not in json.dumps(queue["done"]) and str(spool.work) not in json.dumps(queue), "no paths leak"


def test_the_job_page_shows_result_inputs_sheet_loss_and_every_setting(spool, client):
    deliver(spool.outbox, "tower")
    page = client.get("/jobs/tower").text
    for url in ("/file/outbox/tower/result.png", "/file/outbox/tower/inputs/photo.png",
                "/file/outbox/tower/inputs/style.png", "/file/outbox/tower/sheet.png", "/file/outbox/tower/loss.png"):
        assert url in page
        answer = client.get(url)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert "<th>style_weight</th><td>100.0</td>" in page and "cpu#1" in page
    report = client.get("/file/outbox/tower/report.json")
    assert report.headers["content-type"] == "application/json" and report.json()["seconds"] == 1.5
    assert client.get("/jobs/elsewhere").status_code == 404


def test_the_zip_holds_the_whole_job_folder_and_nothing_a_link_points_to(spool, client, tmp_path):
    folder = deliver(spool.outbox, "tower")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the page")
    os.symlink(secret, folder / "link.txt")
    answer = client.get("/jobs/tower.zip")
    assert answer.headers["content-type"] == "application/zip"
    assert 'filename="tower.zip"' in answer.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(
        f"tower/{name}" for name in ("inputs/job.yaml", "inputs/photo.png", "inputs/style.png", "loss.png",
                                     "report.json", "result.png", "sheet.png"))
    assert archive.read("tower/result.png") == (folder / "result.png").read_bytes()


def test_gallery_pages_newest_first_and_thumbnails_are_made_once(spool, client):
    for number in range(30):
        folder = deliver(spool.outbox, f"job-{number:02d}", size=(800, 600) if number == 29 else (64, 48))
        os.utime(folder, (1_000_000 + number, 1_000_000 + number))
    first = client.get("/gallery").text
    assert first.index("job-29") < first.index("job-28") and "job-05" not in first and "page 1 of 2" in first
    assert "job-05" in client.get("/gallery?page=2").text and "job-29" not in client.get("/gallery?page=2").text
    assert client.get("/gallery?page=x").status_code == 200 and client.get("/gallery?page=99").status_code == 200
    thumb = client.get("/thumb/job-29")
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(PILImage.open(io.BytesIO(thumb.content)).size) == 360
    cached = list((spool.source.parent / "thumbs").rglob("*.jpg"))
    assert len(cached) == 1
    made = cached[0].stat().st_mtime_ns
    assert client.get("/thumb/job-29").content == thumb.content and cached[0].stat().st_mtime_ns == made
    result = spool.outbox / "job-29" / "result.png"
    make_image(result, "style/the_scream.jpg", size=(800, 600))
    os.utime(result, (2_000_000, 2_000_000))
    assert client.get("/thumb/job-29").content != thumb.content, "a changed result gets a new thumbnail"


# --- no way out of the spool --------------------------------------------------------------------------


def raw_get(app, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> int:
    """The status of a GET whose path reaches the app exactly as given (no client tidies it)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), *(headers or [])], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80)}
    answers: list[dict] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.sleep(3600)  # the client stays connected until the answer is sent

    async def send(message):
        answers.append(message)

    asyncio.run(app(scope, receive, send))
    return answers[0]["status"]


@pytest.mark.parametrize("path", [
    "/file/outbox/tower/../../config.yaml",
    "/file/outbox/tower/../tower/report.json",
    "/file/outbox/../config.yaml",
    "/file/outbox/tower//etc/passwd",
    "/file/outbox/tower/%2e%2e/%2e%2e/config.yaml",
    "/file/outbox/tower/..%2f..%2fconfig.yaml",
    "/file/outbox/tower/%252e%252e/config.yaml",
    "/file/outbox/tower/..\\..\\config.yaml",
    "/file/outbox/tower/link.txt",
    "/file/outbox/linked-job/report.json",
    "/file/outbox/tower/inputs",
    "/file/outbox/tower/inputs/",
    "/file/outbox/tower/.hidden",
    "/file/outbox/tower/inputs/linked-folder/job.yaml",
    "/file/work/busy/checkpoint.npz",
    "/file/work/busy/state.json",
    "/file/inbox/waiting/job.yaml",
    "/file/etc/passwd/x",
    "/file/outbox/.hidden-job/report.json",
    "/thumb/..",
    "/thumb/linked-job",
    "/jobs/..",
    "/jobs/linked-job",
    "/failed/..",
    "/static/",
    "/static/../web/app.py",
    "/static/%2e%2e/app.py",
])
def test_no_url_reaches_outside_the_files_the_page_serves(spool, tmp_path, path):
    folder = deliver(spool.outbox, "tower")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "report.json").write_text("{}")
    (tmp_path / "secret" / "job.yaml").write_text("secret")
    os.symlink(tmp_path / "secret" / "report.json", folder / "link.txt")
    os.symlink(tmp_path / "secret", folder / "inputs" / "linked-folder")
    os.symlink(tmp_path / "secret", spool.outbox / "linked-job")
    (folder / ".hidden").write_text("x")
    (spool.outbox / ".hidden-job").mkdir()
    (spool.outbox / ".hidden-job" / "report.json").write_text("{}")
    running(spool.work, "busy")
    (spool.inbox / "waiting").mkdir()
    (spool.inbox / "waiting" / "job.yaml").write_text("content: a.png\n")
    app = create_app(spool, None)
    assert raw_get(app, "/file/outbox/tower/report.json") == 200, "the same file by its plain name is served"
    assert raw_get(app, path) == 404


def test_absolute_paths_and_encoded_names_through_a_real_client(spool, client):
    deliver(spool.outbox, "tower")
    for path in ("/file/outbox/tower/%2Fetc%2Fpasswd", "/file/outbox/%2E%2E/config.yaml",
                 "/file/outbox/tower/%00report.json", "/jobs/%2e%2e", "/file/outbox/tower/report.json%00"):
        assert client.get(path).status_code == 404, path


# --- the token and the address -------------------------------------------------------------------------


def test_the_token_is_checked_on_every_request(spool):
    deliver(spool.outbox, "tower")
    with TestClient(create_app(spool, TOKEN), base_url="http://127.0.0.1", follow_redirects=False) as client:
        for path in ("/", "/gallery", "/jobs/tower", "/file/outbox/tower/result.png", "/api/queue", "/events",
                     "/thumb/tower", "/jobs/tower.zip", "/static/app.js", "/submit"):
            assert client.get(path).status_code == 401, path
        assert client.post("/submit").status_code == 401
        assert client.get("/?token=wrong-token-wrong-token").status_code == 401
        assert client.get("/", headers={"authorization": f"Bearer {TOKEN}x"}).status_code == 401
        assert client.get("/api/queue", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        link = client.get(f"/jobs/tower?token={TOKEN}")
        assert link.status_code == 303 and link.headers["location"] == "/jobs/tower", "the token leaves the URL"
        assert "httponly" in link.headers["set-cookie"].lower() and "samesite=strict" in link.headers["set-cookie"].lower()
        assert client.cookies[TOKEN_COOKIE] == TOKEN
        assert client.get("/jobs/tower").status_code == 200, "the cookie carries it from then on"


def test_a_page_reachable_from_other_machines_needs_a_token(spool, tmp_path):
    for name in ("exposed", "file", "missing", "short"):
        (tmp_path / name).mkdir()
    exposed = load_daemon_config(write_config(tmp_path / "exposed", web={"host": "0.0.0.0"}))
    with pytest.raises(ConfigError, match="no token is set") as raised:
        make_server(exposed)
    assert raised.value.key == "web.host"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with_file = load_daemon_config(write_config(tmp_path / "file", web={"host": "0.0.0.0",
                                                                         "token_file": str(token_file)}))
    assert page_token(with_file.web) == TOKEN
    missing = load_daemon_config(write_config(tmp_path / "missing", web={"token_file": "nowhere"}))
    with pytest.raises(ConfigError, match="cannot read the token file"):
        page_token(missing.web)
    with pytest.raises(ConfigError, match="shorter than 16"):
        load_daemon_config(write_config(tmp_path / "short", web={"token": "short"}))
    assert page_token(spool.web) is None, "loopback without a token is allowed"


def test_a_foreign_host_name_is_refused_without_a_token(client):
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400, "no DNS rebinding"


def test_answers_carry_security_headers(client):
    headers = client.get("/").headers
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in headers["content-security-policy"]


# --- submit ---------------------------------------------------------------------------------------------


def submit(client: TestClient, csrf: str | None, *, files=None, **fields):
    data = {"csrf": csrf, **fields} if csrf is not None else fields
    files = files if files is not None else [("content", ("photo.png", image_bytes(), "image/png")),
                                             ("style", ("painting.png", image_bytes(), "image/png"))]
    return client.post("/submit", data=data, files=files, follow_redirects=False)


def test_a_submitted_job_lands_in_the_inbox_as_styled_submit_puts_it(spool, client):
    answer = submit(client, csrf_of(client), size="64", style_weight="300", method="gatys", preserve_colors="true",
                    more="iterations: 7\n", name="my photo")
    assert answer.status_code == 303 and answer.headers["location"] == "/?submitted=my_photo"
    folder = spool.inbox / "my_photo"
    spec = yaml.safe_load((folder / "job.yaml").read_text())
    assert spec == {"iterations": 7, "size": 64, "style_weight": 300, "method": "gatys", "preserve_colors": True,
                    "content": "photo.png", "style": ["painting.png"]}
    assert sorted(p.name for p in folder.iterdir()) == ["job.yaml", "painting.png", "photo.png"]
    assert [p.name for p in spool.inbox.iterdir()] == ["my_photo"], "nothing half-written is left"


def test_uploaded_file_names_never_become_paths(spool, client):
    files = [("content", ("../../../etc/evil.png", image_bytes(), "image/png")),
             ("style", ("C:\\Users\\x\\..\\style.png", image_bytes(), "image/png")),
             ("style", ("/abs/style.png", image_bytes(), "image/png"))]
    answer = submit(client, csrf_of(client), files=files)
    assert answer.status_code == 303
    folder = spool.inbox / "evil"
    assert sorted(p.name for p in folder.iterdir()) == ["evil.png", "job.yaml", "style-2.png", "style.png"]
    assert not (spool.source.parent / "etc").exists()


def test_a_style_from_the_library_is_named_not_copied(spool, client):
    files = [("content", ("photo.png", image_bytes(), "image/png"))]
    assert "painting.png" in client.get("/submit").text
    answer = submit(client, csrf_of(client), files=files, library="painting.png")
    assert answer.status_code == 303
    folder = spool.inbox / "photo"
    assert yaml.safe_load((folder / "job.yaml").read_text())["style"] == ["painting.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["job.yaml", "photo.png"]
    refused = submit(client, csrf_of(client), files=files, library="../secret.png")
    assert refused.status_code == 422 and "is not in the style library" in refused.text


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"style_weight": "-5"}, "style_weight", "style_weight"),
    ({"size": "huge"}, "size", "size"),
    ({"method": "magic"}, "method", "method"),
    ({"more": "iteratons: 5"}, "more", "did you mean 'iterations'"),
    ({"more": "iterations: [unclosed"}, "more", "line"),
    ({"more": "plugins: {nonesuch: {}}"}, "more", "nonesuch"),
])
def test_bad_values_are_shown_beside_their_field_and_nothing_is_submitted(spool, client, fields, field, words):
    answer = submit(client, csrf_of(client), **fields)
    assert answer.status_code == 422
    assert f'id="{field}-error"' in answer.text
    assert words in html.unescape(answer.text.split(f'id="{field}-error"')[1][:400])
    assert list(spool.inbox.iterdir()) == []


def test_uploads_are_checked_as_images_and_against_the_limits(spool, client, tmp_path):
    not_an_image = [("content", ("photo.png", b"not a picture", "image/png")),
                    ("style", ("painting.png", image_bytes(), "image/png"))]
    answer = submit(client, csrf_of(client), files=not_an_image)
    assert answer.status_code == 422 and 'id="content-error"' in answer.text and "photo.png" in answer.text
    wrong_type = [("content", ("photo.exe", image_bytes(), "image/png")),
                  ("style", ("painting.png", image_bytes(), "image/png"))]
    assert 'id="content-error"' in submit(client, csrf_of(client), files=wrong_type).text
    no_style = submit(client, csrf_of(client), files=[("content", ("photo.png", image_bytes(), "image/png"))])
    assert no_style.status_code == 422 and 'id="style-error"' in no_style.text
    assert list(spool.inbox.iterdir()) == [], "a refused upload leaves nothing in the inbox"
    (tmp_path / "small").mkdir()
    small = load_daemon_config(write_config(tmp_path / "small", max_image_pixels=1000, web={"max_upload": "20kB"}))
    with TestClient(create_app(small, None), base_url="http://127.0.0.1") as limited:
        too_many_pixels = submit(limited, csrf_of(limited))  # 40 x 30 = 1200 pixels
        assert too_many_pixels.status_code == 422 and "pixels" in too_many_pixels.text
        big = [("content", ("photo.png", os.urandom(30_000), "image/png"))]
        too_large = submit(limited, csrf_of(limited), files=big)
        assert too_large.status_code == 413 and "web.max_upload" in too_large.text
        assert list(small.inbox.iterdir()) == []


def test_forms_need_their_csrf_token_and_this_origin(spool, client):
    csrf = csrf_of(client)
    assert submit(client, None).status_code == 403
    assert submit(client, "forged-" + csrf).status_code == 403
    forged = client.post("/submit", data={"csrf": csrf}, headers={"origin": "http://evil.example"},
                         files=[("content", ("photo.png", image_bytes(), "image/png"))])
    assert forged.status_code == 403
    fail(spool.failed, "broken")
    assert client.post("/failed/broken/retry", data={}).status_code == 403
    assert list(spool.inbox.iterdir()) == [] and (spool.failed / "broken").exists()


# --- failures and retry -----------------------------------------------------------------------------------


def test_a_failure_shows_its_key_line_and_hint(spool, client):
    fail(spool.failed, "broken")
    page = client.get("/failed/broken").text
    assert "style_weight must be at least 0" in page and ">style_weight<" in page and ">3<" in page
    assert "give a weight such as 100" in page and "style_weight: -1" in page


def test_retry_moves_the_inputs_back_into_the_inbox_once(spool, client):
    fail(spool.failed, "broken")
    answer = client.post("/failed/broken/retry", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/?retried=broken"
    folder = spool.inbox / "broken"
    assert sorted(p.name for p in folder.iterdir()) == ["job.yaml", "photo.png", "style.png"]
    assert "style_weight: -1" in (folder / "job.yaml").read_text(), "as it was"
    assert list(spool.failed.iterdir()) == [], "it left failed/"
    again = client.post("/failed/broken/retry", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert again.status_code == 404


def test_retry_with_edited_settings_checks_them_first(spool, client):
    fail(spool.failed, "broken")
    csrf = csrf_of(client)
    bad = client.post("/failed/broken/retry", data={"csrf": csrf, "edit": "1",
                                                    "spec": "content: photo.png\nstyle: style.png\nsize: 0\n"})
    assert bad.status_code == 422 and 'id="spec-error"' in bad.text and "line 3" in bad.text
    assert list(spool.inbox.iterdir()) == [] and (spool.failed / "broken").exists()
    good = client.post("/failed/broken/retry", data={"csrf": csrf, "edit": "1",
                                                     "spec": "content: photo.png\r\nstyle: style.png\r\nstyle_weight: 50\r\n"},
                       follow_redirects=False)
    assert good.status_code == 303
    assert yaml.safe_load((spool.inbox / "broken" / "job.yaml").read_text())["style_weight"] == 50


def test_a_loose_spec_goes_back_as_a_job_folder(spool, client):
    folder = fail(spool.failed, "loose-2")
    (folder / "inputs" / "job.yaml").rename(folder / "inputs" / "loose.yaml")
    payload = json.loads((folder / "error.json").read_text())
    payload["job"]["name"] = "loose"
    (folder / "error.json").write_text(json.dumps(payload))
    (spool.inbox / "loose").mkdir()  # the name is taken meanwhile
    answer = client.post("/failed/loose-2/retry", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert answer.headers["location"] == "/?retried=loose-2"
    assert sorted(p.name for p in (spool.inbox / "loose-2").iterdir()) == ["job.yaml", "photo.png", "style.png"]


def test_text_from_the_spool_is_escaped(spool, client):
    folder = fail(spool.failed, "broken", spec="content: '<script>alert(1)</script>'\n")
    payload = json.loads((folder / "error.json").read_text())
    payload["message"] = "<img src=x onerror=alert(1)>"
    (folder / "error.json").write_text(json.dumps(payload))
    page = client.get("/failed/broken").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_open_pages_share_one_look_at_the_spool_per_second(spool):
    from styled.web.app import EVENT_SECONDS, QueueWatch

    watch = QueueWatch(spool)

    async def twice_then_later() -> tuple[str, str, str]:
        first = await watch.current()
        (spool.inbox / "new-job").mkdir()
        (spool.inbox / "new-job" / "job.yaml").write_text("content: a.png\n")
        second = await watch.current()  # another page, at once: the same look
        await asyncio.sleep(EVENT_SECONDS)
        return first, second, await watch.current()

    first, second, later = asyncio.run(twice_then_later())
    assert first is second and "new-job" not in second
    assert "new-job" in later


def test_an_inpainting_job_from_the_form_needs_no_style_and_carries_its_priority(spool, client):
    files = [("content", ("photo.png", image_bytes(), "image/png"))]
    answer = submit(client, csrf_of(client), files=files, priority="4",
                    more="plugins:\n  inpainting: {region: [2, 2, 4, 4]}\n")
    assert answer.status_code == 303, answer.text
    spec = yaml.safe_load((spool.inbox / "photo" / "job.yaml").read_text())
    assert spec["priority"] == 4 and "style" not in spec and spec["plugins"]["inpainting"]["region"] == [2, 2, 4, 4]
    refused = submit(client, csrf_of(client), files=files)
    assert refused.status_code == 422 and "choose at least one style image" in refused.text, "no style anywhere"


def test_cancel_and_priority_need_the_csrf_token_and_say_why_they_cannot(spool, client):
    from styled.daemon.control import REQUESTS_DIR

    submit(client, csrf_of(client), name="poster")
    token = csrf_of(client)
    refused = client.post("/jobs/poster/cancel", data={}, follow_redirects=False)
    assert refused.status_code == 403 and not (spool.inbox / REQUESTS_DIR).exists()
    changed = client.post("/jobs/poster/priority", data={"csrf": token, "priority": "7"}, follow_redirects=False)
    assert changed.status_code == 303 and "priority: 7" in (spool.inbox / "poster" / "job.yaml").read_text()
    page = client.get("/jobs/poster")
    assert page.status_code == 200 and "waiting in the inbox" in page.text.lower() and 'id="cancel"' in page.text
    cancelled = client.post("/jobs/poster/cancel", data={"csrf": token}, follow_redirects=False)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == "/?cancelled=poster"
    assert len(list((spool.inbox / REQUESTS_DIR).iterdir())) == 1, "a request for the daemon"
    unknown = client.post("/jobs/nothing/cancel", data={"csrf": token}, follow_redirects=False)
    assert unknown.status_code == 409 and "no job named" in unknown.text
    bad = client.post("/jobs/poster/priority", data={"csrf": token, "priority": "soon"}, follow_redirects=False)
    assert bad.status_code == 409 and "whole number" in bad.text
