"""`GET /api/tasks/{id}/?wait=S`: held open on the event loop, woken by the task's own event.

The DRF view (`TaskDetailView`) does all a request needs (authentication, permissions,
throttling, validation, the first read of the state) and answers, or hands back an
`UnfinishedTask` when asked to wait. This async front then waits on the channel-layer group
the publisher sends the task's finished event to (`task.<id>`), holding no thread and polling
nothing (django-celery-results' `AsyncResult.get()` reads the database every 0.5 s), and reads
the state again through AsyncResult once woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from scheduler.api.errors import UNAVAILABLE
from scheduler.api.serializers import TaskStatusSerializer
from scheduler.api.views import TaskDetailView, UnfinishedTask
from scheduler.publisher import task_group
from scheduler.selectors import TaskStatus, task_status

logger = logging.getLogger(__name__)

_task_detail_view = TaskDetailView.as_view()


class ChannelLayerMissing(RuntimeError):
    pass


async def wait_until_finished(task_id: str, *, timeout: float) -> TaskStatus:
    """The task's status once it has finished, or after `timeout` seconds, whichever is first."""
    layer: Any = get_channel_layer()
    if layer is None:
        raise ChannelLayerMissing("no channel layer is configured (CHANNEL_LAYERS)")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    read = sync_to_async(task_status)  # the result backend is the database
    group = task_group(task_id)
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        # Read again once in the group: a task that finished after the view's read sent its
        # event to nobody.
        task = await read(task_id)
        while not task.finished and (remaining := deadline - loop.time()) > 0:
            # On timeout, one last read below: the answer is the state the task has then.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(layer.receive(channel), remaining)
            # Woken: the event may be another task's whose id shares the group name's prefix.
            task = await read(task_id)
        return task
    finally:
        try:
            await layer.group_discard(group, channel)
        except Exception:  # Redis went away: the membership expires on its own
            logger.warning("could not leave channel-layer group %s", group, exc_info=True)


@csrf_exempt  # as every DRF view: SessionAuthentication checks CSRF on writes itself
async def task_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    response = await sync_to_async(_task_detail_view)(request, task_id=task_id)
    if not isinstance(response, UnfinishedTask):
        return response
    try:
        task = await wait_until_finished(response.task_id, timeout=response.wait)
    except (ChannelLayerMissing, OSError, *UNAVAILABLE) as exc:
        logger.warning("cannot wait on task %s: %s", response.task_id, exc)
        response.status_code = 503
        response.data = {
            "detail": "cannot wait: the channel layer (Redis) is unavailable; "
            "ask again without wait"
        }
        response["Retry-After"] = "5"
        return response
    response.data = TaskStatusSerializer(task).data
    # Rendered here, on the loop (JSON, no database), and handed over as a plain response:
    # Django would otherwise hop to a thread to render it, on the path every waiter is timed on.
    response.render()
    return HttpResponse(
        response.content, status=response.status_code, headers=dict(response.items())
    )


# drf-spectacular documents the DRF view behind this front (the route's callback).
task_detail.cls = TaskDetailView  # type: ignore[attr-defined]
task_detail.initkwargs = {}  # type: ignore[attr-defined]
