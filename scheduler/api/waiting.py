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
import logging
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.renderers import JSONRenderer

from scheduler.api.errors import UNAVAILABLE
from scheduler.api.serializers import TaskStatusSerializer
from scheduler.api.views import TaskDetailView, UnfinishedTask
from scheduler.live.publisher import task_group
from scheduler.selectors import TaskStatus, task_status

logger = logging.getLogger(__name__)

_task_detail_view = TaskDetailView.as_view()
_renderer = JSONRenderer()


class ChannelLayerMissing(RuntimeError):
    pass


class TaskWaiter:
    """A membership of the group the task's finished event is sent to (`task.<id>`)."""

    def __init__(self, task_id: str, layer: Any, channel: str) -> None:
        self.task_id = task_id
        self.group = task_group(task_id)
        self._layer = layer
        self._channel = channel

    @classmethod
    async def join(cls, task_id: str) -> TaskWaiter:
        """Join the task's group; raises when the channel layer cannot be reached."""
        layer: Any = get_channel_layer()
        if layer is None:
            raise ChannelLayerMissing("no channel layer is configured (CHANNEL_LAYERS)")
        waiter = cls(task_id, layer, await layer.new_channel())
        await layer.group_add(waiter.group, waiter._channel)
        return waiter

    async def wait(self, timeout: float) -> TaskStatus:
        """The task's status once it has finished, or after `timeout` s, whichever is first.

        If the channel layer fails meanwhile, the state the task has then.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        read = sync_to_async(task_status)  # the result backend is the database
        # Read again once in the group: a task that finished after the view's read sent its
        # event to nobody.
        task = await read(self.task_id)
        while not task.finished and (remaining := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._layer.receive(self._channel), remaining)
            except TimeoutError:
                pass  # one last read below: the answer is the state the task has then
            except (OSError, *UNAVAILABLE) as exc:
                logger.warning("stopped waiting on task %s: %s", self.task_id, exc)
                return await read(self.task_id)
            # Woken: the event may be another task's whose id shares the group name's prefix.
            task = await read(self.task_id)
        return task

    async def leave(self) -> None:
        try:
            await self._layer.group_discard(self.group, self._channel)
        except Exception:  # Redis went away: the membership expires on its own
            logger.warning("could not leave channel-layer group %s", self.group, exc_info=True)


async def wait_until_finished(task_id: str, *, timeout: float) -> TaskStatus:
    """The task's status once it has finished, or after `timeout` seconds, whichever is first."""
    waiter = await TaskWaiter.join(task_id)
    try:
        return await waiter.wait(timeout)
    finally:
        await waiter.leave()


async def _answer(waiter: TaskWaiter, timeout: float) -> AsyncIterator[bytes]:
    try:
        task = await waiter.wait(timeout)
    finally:
        await waiter.leave()  # also when the client went away and the wait was cancelled
    yield _renderer.render(TaskStatusSerializer(task).data)


@csrf_exempt  # as every DRF view: SessionAuthentication checks CSRF on writes itself
async def task_detail(request: HttpRequest, task_id: str) -> HttpResponse | StreamingHttpResponse:
    response = await sync_to_async(_task_detail_view)(request, task_id=task_id)
    if not isinstance(response, UnfinishedTask):
        return response
    try:
        waiter = await TaskWaiter.join(response.task_id)
    except (ChannelLayerMissing, OSError, *UNAVAILABLE) as exc:
        logger.warning("cannot wait on task %s: %s", response.task_id, exc)
        response.status_code = 503
        response.data = {
            "detail": "cannot wait: the channel layer (Redis) is unavailable; "
            "ask again without wait"
        }
        response["Retry-After"] = "5"
        return response
    # The status line and headers go now, the body when the task has finished: the middleware
    # (a thread hop each, for sync middleware under ASGI) runs while the task still runs, not
    # between its end and the answer. The answer is 200 whatever the task's state.
    response.render()
    headers = {name: value for name, value in response.items() if name.lower() != "content-length"}
    return StreamingHttpResponse(_answer(waiter, response.wait), status=200, headers=headers)


# drf-spectacular documents the DRF view behind this front (the route's callback).
task_detail.cls = TaskDetailView  # type: ignore[attr-defined]
task_detail.initkwargs = {}  # type: ignore[attr-defined]
