"""No pickle anywhere: Celery refuses a pickled message or result (that it speaks JSON only is
checked in tests/config/test_celery.py), and none of our own modules imports a deserialiser that
runs code (pickle, marshal, shelve, unsafe YAML).

A pickle that is loaded runs whatever its author wrote; whoever can write to Redis or the results
table would run code in every worker.
"""

from __future__ import annotations

import ast
import base64
import pickle
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult
from django.conf import settings
from django_celery_results.models import TaskResult
from kombu import Connection, Exchange, Producer, Queue
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import dumps, loads, prepare_accept_content

from config.celery import app
from tests.processes import BASE_DIR

pytestmark = pytest.mark.security

PROJECT_PACKAGES = ("config", "scheduler", "agents", "tournaments")
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
UNSAFE_MODULES |= {"jsonpickle"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


class _Explodes:
    """Unpickling this touches a file: the proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_sessions_are_stored_as_json():
    assert settings.SESSION_SERIALIZER == "django.contrib.sessions.serializers.JSONSerializer"


def test_it_refuses_to_decode_a_pickled_message(tmp_path):
    marker = tmp_path / "unpickled"
    accept = prepare_accept_content(app.conf.accept_content)
    content_type, encoding, body = dumps(_Explodes(marker), serializer="pickle")

    with pytest.raises(ContentDisallowed):
        loads(body, content_type, encoding, accept=accept)

    assert not marker.exists()
    # The same call takes JSON: what is refused is the pickle, not every message.
    content_type, encoding, body = dumps({"ok": True}, serializer="json")
    assert loads(body, content_type, encoding, accept=accept) == {"ok": True}


def test_a_consumer_with_the_apps_accept_list_refuses_a_pickled_message_from_the_broker(tmp_path):
    marker = tmp_path / "unpickled"
    exchange = Exchange("security-test", type="direct")
    queue = Queue("security-test", exchange, routing_key="security-test")
    received: list[Any] = []

    with Connection("memory://") as connection:
        queue(connection.default_channel).declare()
        Producer(connection.default_channel).publish(
            {"task": "scheduler.ping", "payload": _Explodes(marker)},
            exchange=exchange,
            routing_key="security-test",
            serializer="pickle",
            declare=[queue],
        )
        message = queue(connection.default_channel).get(no_ack=True, accept=app.conf.accept_content)
        assert message is not None
        with pytest.raises(ContentDisallowed):
            received.append(message.decode())

    assert received == []
    assert not marker.exists()


@pytest.mark.django_db
def test_it_never_unpickles_a_result_written_into_the_results_table(tmp_path):
    marker = tmp_path / "unpickled"
    TaskResult.objects.create(
        task_id="tampered",
        status="SUCCESS",
        result=base64.b64encode(pickle.dumps(_Explodes(marker))).decode(),
        content_type="application/x-python-serialize",
        content_encoding="binary",
    )

    with pytest.raises((ContentDisallowed, DecodeError, ValueError)):
        AsyncResult("tampered", app=app).result  # noqa: B018 (the read is the test)

    assert not marker.exists()


# --- Our own code ---------------------------------------------------------------------------------


def unsafe_deserialisation(source: str, filename: str) -> list[str]:
    """Imports of pickle-like modules, and yaml.load without a safe Loader."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"{where}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in UNSAFE_MODULES:
                found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            found.extend(f"{where}: {problem}" for problem in _unsafe_call(node))
    return found


def _unsafe_call(node: ast.Call) -> list[str]:
    name = ast.unparse(node.func)
    if name in {"importlib.import_module", "__import__", "import_module"} and node.args:
        target = node.args[0]
        if isinstance(target, ast.Constant) and str(target.value).split(".")[0] in UNSAFE_MODULES:
            return [f"{name}({target.value!r})"]
    if name.endswith(("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all")):
        return [f"{name}()"]
    if name.endswith(("yaml.load", "yaml.load_all")):
        loader = next((kw.value for kw in node.keywords if kw.arg == "Loader"), None)
        if loader is None and len(node.args) > 1:
            loader = node.args[1]
        if loader is None or ast.unparse(loader).split(".")[-1] not in SAFE_YAML_LOADERS:
            return [f"{name}() without a safe Loader"]
    return []


def test_no_module_of_ours_deserialises_with_pickle_marshal_shelve_or_unsafe_yaml():
    files = [path for package in PROJECT_PACKAGES for path in (BASE_DIR / package).rglob("*.py")]

    found = [
        problem
        for path in files
        for problem in unsafe_deserialisation(path.read_text(), str(path.relative_to(BASE_DIR)))
    ]

    assert found == []
    assert len(files) > 50  # the scan read the project, not an empty folder


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "import cPickle as p",
        "from pickle import loads",
        "import marshal",
        "import shelve",
        "from dill import loads",
        "importlib.import_module('pickle')",
        "__import__('marshal')",
        "yaml.load(text)",
        "yaml.load(text, Loader=yaml.Loader)",
        "yaml.load(text, yaml.UnsafeLoader)",
        "yaml.unsafe_load(text)",
        "yaml.full_load(text)",
    ],
)
def test_the_scan_finds_what_it_looks_for(source):
    assert unsafe_deserialisation(source, "example.py") != []


@pytest.mark.parametrize(
    "source",
    [
        "import json",
        "yaml.safe_load(text)",
        "yaml.load(text, Loader=yaml.SafeLoader)",
        "yaml.load(text, yaml.CSafeLoader)",
        "from kombu.serialization import loads",
    ],
)
def test_the_scan_lets_safe_code_through(source):
    assert unsafe_deserialisation(source, "example.py") == []
