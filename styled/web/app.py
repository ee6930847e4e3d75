"""The page's routes (Starlette). Every page is whole HTML that works without JavaScript; app.js
only keeps the queue live from the server-sent events of ``/events``.

    /                        the queue: waiting, running (live), done, failed
    /gallery?page=N          finished jobs, newest first, thumbnails
    /jobs/NAME               a result: images side by side, sheet, loss plot, settings, downloads
    /jobs/NAME.zip           the whole job folder, streamed
    /failed/NAME             the error with its key, line and hint; retry, optionally with an edited spec
    /jobs/NAME/cancel        POST: cancel a waiting or running job (styled cancel's twin)
    /jobs/NAME/priority      POST: change a waiting job's priority (styled priority's twin)
    /submit                  the form
    /file/AREA/NAME/PATH     a file of outbox/NAME, failed/NAME, or work/NAME's preview and latest image
    /thumb/NAME              a gallery thumbnail (cached)
    /events, /api/queue      the queue as server-sent events and as JSON
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import time
from collections.abc import AsyncIterator
from urllib.parse import quote
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from styled.daemon.config import DaemonConfig
from styled.daemon.control import request_cancel, set_priority
from styled.engine.spec import MAX_PRIORITY
from styled.errors import JobControlError
from styled.web.guard import CSRF_FIELD, Guard, csrf_problem, is_loopback
from styled.web.jobs import FORM_KEYS, FormErrors, Submission, Upload, retry, submit_form
from styled.web.media import default_thumbnail_folder, thumbnail, zip_folder
from styled.web.view import (
    GALLERY_PAGE,
    NotInSpool,
    failed_page,
    finished,
    gallery_source,
    job_folder,
    job_page,
    library_images,
    pending_job,
    queue,
    shown_image,
    spool_file,
)

HERE = Path(__file__).parent
#: How often the live queue looks at the spool, and how often an idle stream says it is alive.
EVENT_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
METHODS = ("gatys", "adain")


def create_app(config: DaemonConfig, token: str | None) -> Starlette:
    """The application for ``config``'s spool; ``token`` from :func:`styled.web.guard.page_token`."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    thumbnails = Path(config.web.thumbnails) if config.web.thumbnails else default_thumbnail_folder()
    pages = _Pages(config, templates, thumbnails)
    routes = [
        Route("/", pages.queue_page),
        Route("/gallery", pages.gallery),
        Route("/jobs/{name}.zip", pages.download),
        Route("/jobs/{name}/cancel", pages.cancel, methods=["POST"]),
        Route("/jobs/{name}/priority", pages.priority, methods=["POST"]),
        Route("/jobs/{name}", pages.job),
        Route("/failed/{name}", pages.failed),
        Route("/failed/{name}/retry", pages.retry, methods=["POST"]),
        Route("/submit", pages.submit_page, methods=["GET", "POST"]),
        Route("/file/{area}/{name}/{path:path}", pages.file),
        Route("/thumb/{name}", pages.thumb),
        Route("/events", pages.events),
        Route("/api/queue", pages.queue_json),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(Guard, token=token)]
    if token is None and is_loopback(config.web.host):  # no token: refuse DNS-rebinding host names
        middleware.insert(0, Middleware(TrustedHostMiddleware,
                                        allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1", "testserver"]))
    return Starlette(routes=routes, middleware=middleware, exception_handlers={
        NotInSpool: pages.not_found, 404: pages.not_found})


class QueueWatch:
    """One look at the spool per EVENT_SECONDS, shared by every open page: ten pages cost the
    daemon's disk what one does."""

    def __init__(self, config: DaemonConfig):
        self.config = config
        self.snapshot: str | None = None
        self.taken = -float("inf")
        self.lock = asyncio.Lock()

    def forget(self) -> None:
        """Make the next ``current`` look at the spool afresh (after a change made from the page)."""
        self.taken = -float("inf")

    async def current(self) -> str:
        async with self.lock:
            now = time.monotonic()
            if now - self.taken >= EVENT_SECONDS * 0.9:
                queue_now = await to_thread.run_sync(queue, self.config)
                self.snapshot, self.taken = json.dumps(queue_now, sort_keys=True), now
            return self.snapshot


class _Pages:
    """The route handlers, sharing the config, the templates, the thumbnail cache and the queue."""

    def __init__(self, config: DaemonConfig, templates: Jinja2Templates, thumbnails: Path):
        self.config, self.templates, self.thumbnails = config, templates, thumbnails
        self.watch = QueueWatch(config)

    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(request, template, {"csrf": request.state.csrf, **context},
                                               status_code=status_code)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self.render(request, "message.html", 404, title="Not found",
                           message="There is no such job or file (it may have been moved or retried).")

    # --- the queue ---

    async def queue_page(self, request: Request) -> Response:
        return self.render(request, "queue.html", queue=await to_thread.run_sync(queue, self.config))

    async def queue_json(self, request: Request) -> Response:
        return JSONResponse(await to_thread.run_sync(queue, self.config))

    async def events(self, request: Request) -> Response:
        return StreamingResponse(self._queue_events(request), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def _queue_events(self, request: Request) -> AsyncIterator[str]:
        """The queue each time it changes (checked every EVENT_SECONDS), a comment when idle."""
        last, quiet = None, 0.0
        while not await request.is_disconnected():
            snapshot = await self.watch.current()
            if snapshot != last:
                last, quiet = snapshot, 0.0
                yield f"event: queue\ndata: {snapshot}\n\n"
            elif quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": alive\n\n"
            await asyncio.sleep(EVENT_SECONDS)
            quiet += EVENT_SECONDS

    # --- results ---

    async def gallery(self, request: Request) -> Response:
        jobs = await to_thread.run_sync(finished, self.config, "outbox")
        pages = max(1, -(-len(jobs) // GALLERY_PAGE))
        try:
            number = min(max(1, int(request.query_params.get("page", "1"))), pages)
        except ValueError:
            number = 1
        shown = jobs[(number - 1) * GALLERY_PAGE: number * GALLERY_PAGE]
        return self.render(request, "gallery.html", jobs=shown, page=number, pages=pages, total=len(jobs))

    async def job(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            page = await to_thread.run_sync(job_page, self.config, name)
        except NotInSpool:
            pending = await to_thread.run_sync(pending_job, self.config, name)
            if pending is None:
                raise
            return self.render(request, "pending.html", job=pending)
        return self.render(request, "job.html", job=page, shown=shown_image(page))

    # --- controls: cancel, priority ---

    async def cancel(self, request: Request) -> Response:
        return await self._control(request, lambda name, form: request_cancel(self.config, name, by="the web page"),
                                   "cancelled")

    async def priority(self, request: Request) -> Response:
        def change(name: str, form: Any) -> None:
            try:
                value = int((_text(form.get("priority")) or "").strip())
            except ValueError:
                raise JobControlError("the priority must be a whole number, such as 5 or -1") from None
            if abs(value) > MAX_PRIORITY:
                raise JobControlError(f"the priority must be from -{MAX_PRIORITY} to {MAX_PRIORITY}, got {value}")
            set_priority(self.config, name, value, by="the web page")

        return await self._control(request, change, "reprioritised")

    async def _control(self, request: Request, action: Any, done: str) -> Response:
        """A control form's POST: the CSRF check, the action, then back to the page it came from."""
        name = request.path_params["name"]
        form = await request.form()
        problem = csrf_problem(request, _text(form.get(CSRF_FIELD)))
        if problem:
            return self.render(request, "message.html", 403, title="Refused", message=problem)
        try:
            await to_thread.run_sync(action, name, form)
        except JobControlError as error:
            return self.render(request, "message.html", 409, title="Not possible", message=str(error))
        self.watch.forget()
        back = "/" if _text(form.get("back")) != "job" else f"/jobs/{quote(name)}"
        return RedirectResponse(f"{back}?{done}={quote(name)}", status_code=303)

    def file(self, request: Request) -> Response:
        params = request.path_params
        path = spool_file(self.config, params["area"], params["name"], params["path"])
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        inline = media_type.startswith("image/") or media_type in ("text/plain", "application/json")
        return FileResponse(path, media_type=media_type, filename=None if inline else path.name,
                            headers={"cache-control": "no-cache"})

    def thumb(self, request: Request) -> Response:
        source = gallery_source(self.config, request.path_params["name"])
        return FileResponse(thumbnail(source, self.thumbnails), media_type="image/jpeg",
                            headers={"cache-control": "private, max-age=3600"})

    def download(self, request: Request) -> Response:
        name = request.path_params["name"]
        folder = job_folder(self.config, "outbox", name)
        return StreamingResponse(zip_folder(folder, name), media_type="application/zip",
                                 headers={"content-disposition": f'attachment; filename="{name}.zip"'})

    # --- failures ---

    async def failed(self, request: Request) -> Response:
        page = await to_thread.run_sync(failed_page, self.config, request.path_params["name"])
        return self.render(request, "failed.html", job=page, errors={}, spec_text=page.spec_text)

    async def retry(self, request: Request) -> Response:
        name = request.path_params["name"]
        form = await request.form()
        problem = csrf_problem(request, _text(form.get(CSRF_FIELD)))
        if problem:
            return self.render(request, "message.html", 403, title="Refused", message=problem)
        edited = _text(form.get("spec")) if form.get("edit") else None
        try:
            placed = await to_thread.run_sync(retry, self.config, name, edited)
        except FormErrors as errors:
            page = await to_thread.run_sync(failed_page, self.config, name)
            return self.render(request, "failed.html", 422, job=page, errors=errors.errors,
                               spec_text=edited if edited is not None else page.spec_text)
        return RedirectResponse(f"/?retried={placed.name}", status_code=303)

    # --- submit ---

    async def submit_page(self, request: Request) -> Response:
        library = await to_thread.run_sync(library_images, self.config)
        if request.method == "GET":
            return self._submit_form(request, library)
        limit = self.config.web.max_upload
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return self._too_large(request, library)
        try:
            form = await _limited(request, limit).form(max_files=64, max_fields=64)
        except UploadTooLarge:
            return self._too_large(request, library)
        problem = csrf_problem(request, _text(form.get(CSRF_FIELD)))
        if problem:
            return self.render(request, "message.html", 403, title="Refused", message=problem)
        submission = Submission(
            name=_text(form.get("name")) or "",
            content=_upload(form.get("content")),
            styles=tuple(upload for upload in (_upload(item) for item in form.getlist("style")) if upload),
            library=tuple(_text(item) or "" for item in form.getlist("library")),
            values={key: _text(form.get(key)) or "" for key in FORM_KEYS},
            more=_text(form.get("more")) or "",
        )
        try:
            placed = await to_thread.run_sync(submit_form, self.config, submission)
        except FormErrors as errors:
            return self._submit_form(request, library, errors.errors, form, 422)
        finally:
            await form.close()
        return RedirectResponse(f"/?submitted={placed.name}", status_code=303)

    def _submit_form(self, request: Request, library: list[str], errors: dict[str, str] | None = None,
                     form: Any = None, status_code: int = 200) -> Response:
        values = {key: _text(form.get(key)) or "" for key in (*FORM_KEYS, "name", "more")} if form else {}
        chosen = set(form.getlist("library")) if form else set()
        return self.render(request, "submit.html", status_code, errors=errors or {}, values=values,
                           library=library, chosen=chosen, methods=METHODS,
                           max_upload_mb=self.config.web.max_upload / 1e6)

    def _too_large(self, request: Request, library: list[str]) -> Response:
        mb = self.config.web.max_upload / 1e6
        return self._submit_form(request, library, {"content": f"the upload is larger than {mb:.0f} MB, the "
                                                               "limit set by web.max_upload"}, None, 413)


class UploadTooLarge(Exception):
    """The request body passed web.max_upload while it was read."""


def _limited(request: Request, limit: int) -> Request:
    """The request, reading whose body raises UploadTooLarge past ``limit`` bytes (a body without a
    Content-Length, or with a false one, is counted as it arrives)."""
    received = 0

    async def receive():  # noqa: ANN202
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise UploadTooLarge
        return message

    return Request(request.scope, receive)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _upload(value: Any) -> Upload | None:
    if isinstance(value, UploadFile) and value.filename:
        return Upload(filename=value.filename, stream=value.file)
    return None
