"""A webhook that answers with an error page (issue 15, item 10): the failed run says what
happened in one line of plain text; the page itself is kept for the task page, collapsed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django_celery_results.models import TaskResult

from agents import services, tasks
from scheduler import selectors
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ERROR_PAGE = (
    "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>Error 404 (Not Found)!!1"
    "</title><style>*{margin:0;padding:0}html{background:#fff;color:#222}</style></head>\n"
    "<body><p><b>404.</b> <ins>That&rsquo;s an error.</ins></p>\n"
    "<p>The requested URL <code>/hook</code> was not found on this server.</p>"
    + "<!-- padding -->" * 100
    + "</body></html>"
)


@pytest.fixture
def error_page() -> Iterator[str]:
    """A webhook receiver that answers every POST with a 404 HTML page."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = ERROR_PAGE.encode()
            self.send_response(404)
            self.send_header("Content-Type", "text/html; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_refused_delivery_fails_with_one_line_and_keeps_the_page_for_the_task_page(
    error_page: str,
) -> None:
    agent = services.agent_create(name="Poster", slug="poster", webhook_url=error_page)

    outcome = tasks.post.apply(kwargs={"agent": agent.slug, "topic": "x"}, throw=False)

    assert outcome.failed()
    message = str(outcome.result)
    assert "<" not in message
    assert "404 Not Found: Error 404 (Not Found)!!1" in message
    assert len(message) < 250
    assert ERROR_PAGE in outcome.traceback

    # As the result backend stored it: the failures panel and the task page.
    stored = TaskResult.objects.get(task_id=outcome.id)
    assert stored.status == "FAILURE"
    [failure] = selectors.task_failures()
    assert failure["error"] == selectors.result_error(stored)
    assert "<" not in failure["error"]

    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    html = client.get(f"/dashboard/tasks/{outcome.id}/").content.decode()
    error = html.split('<pre class="block" id="task-error">', 1)[1].split("</pre>", 1)[0]
    assert "&lt;" not in error
    response = html.split('<details class="block-details" id="task-response">', 1)[1]
    response = response.split("</details>", 1)[0]
    assert "<summary>Response body (text/html; charset=UTF-8," in response
    assert "&lt;title&gt;Error 404 (Not Found)!!1&lt;/title&gt;" in response
    traceback = html.split('id="task-traceback">', 1)[1].split("</pre>", 1)[0]
    assert "&lt;title&gt;" not in traceback
    assert "PermanentError" in traceback
