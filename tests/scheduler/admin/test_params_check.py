"""The periodic task form's typed parameters, server side: the JSON endpoint the inputs call as
staff type (the catalog's validation, as saving runs it; 400s naming the parameter; staff with
the permission only), and what the form page gives the inputs (each task's schema, the refused
save's errors by parameter, no stock crontab script)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from scheduler.services import ScheduleError, task_validate
from tests.forms import ECHO, periodic_task_form
from tests.scheduler.admin.helpers import ADD_URL, form_errors, nothing_saved

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("echo_entry")]

CHECK_URL = reverse("admin:django_celery_beat_periodictask_params_check")


def check(client: Client, body: Any) -> Any:
    return client.post(CHECK_URL, json.dumps(body), content_type="application/json")


def test_it_answers_the_checked_parameters_with_their_defaults(admin_client):
    response = check(admin_client, {"task": ECHO, "params": {"times": 3}})

    assert response.status_code == 200
    assert response.json() == {"task": ECHO, "params": {"times": 3, "text": "hi"}}


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        (
            {"times": "many"},
            {"times": ["Input should be a valid integer, unable to parse string as an integer"]},
        ),
        ({"times": 0}, {"times": ["Input should be greater than or equal to 1"]}),
        ({"times": 2, "colour": "red"}, {"colour": ["is not a parameter of this task"]}),
        ([1, 2], {"params": ["must be a JSON object, not list"]}),
    ],
)
def test_it_names_the_parameter_with_the_message_saving_gives(admin_client, params, errors):
    response = check(admin_client, {"task": ECHO, "params": params})

    assert response.status_code == 400
    assert response.json() == {"params": errors}
    # The very messages of the service the admin, the CLI and the API save through.
    with pytest.raises(ScheduleError) as refused:
        task_validate(task=ECHO, params=params)
    assert refused.value.param_errors == errors
    for path, messages in errors.items():
        for message in messages:
            assert message in refused.value.errors["params"][0], (path, message)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"task": "tests.not_there", "params": {}}, "task", "not in the catalog"),
        ({"params": {}}, "task", "is required"),
        ({"task": ""}, "task", "is required"),
        ([ECHO], "body", "must be a JSON object"),
    ],
)
def test_it_refuses_a_task_outside_the_catalog_or_a_body_without_one(
    admin_client, body, field, message
):
    response = check(admin_client, body)

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert message in response.json()[field][0]


def test_it_refuses_malformed_json_as_json(admin_client):
    response = admin_client.post(CHECK_URL, '{"task": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["body"][0].startswith("malformed JSON")


def test_it_answers_anonymous_visitors_401_in_json(client):
    response = check(client, {"task": ECHO, "params": {}})

    assert response.status_code == 401
    assert response.json() == {"detail": "not signed in"}


def test_it_forbids_staff_who_may_only_view_periodic_tasks(viewer_client):
    response = check(viewer_client, {"task": ECHO, "params": {}})

    assert response.status_code == 403
    assert "permission denied" in response.json()["detail"]


def test_it_forbids_a_user_who_is_not_staff_even_with_the_permission():
    user = User.objects.create_user("outsider", password="pw")
    user.user_permissions.add(
        Permission.objects.get(
            codename="change_periodictask", content_type__app_label="django_celery_beat"
        )
    )
    client = Client()
    client.force_login(user)

    assert check(client, {"task": ECHO, "params": {}}).status_code == 403


def test_it_takes_only_a_post_with_the_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert check(client, {"task": ECHO, "params": {}}).status_code == 403
    client.get(ADD_URL)  # the form page sets the CSRF cookie its script sends back
    response = client.post(
        CHECK_URL,
        json.dumps({"task": ECHO, "params": {}}),
        content_type="application/json",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )
    assert response.status_code == 200
    assert client.get(CHECK_URL).status_code == 405


def test_it_gives_the_form_each_task_schema_and_the_check_url(admin_client):
    response = admin_client.get(ADD_URL)

    content = response.content.decode()
    schemas = response.context["catalog_params_schemas"]
    assert schemas[ECHO]["properties"]["times"]["type"] == "integer"
    assert schemas["agents.reply"]["properties"]["time_unit"]["enum"] == [
        "minutes",
        "hours",
        "days",
    ]
    assert 'id="scheduler-params-schemas"' in content
    assert f'"{CHECK_URL}"' in content
    assert "scheduler/admin/params.js" in content
    # django-celery-beat's script, which wrote "Translation: undefined" under an empty crontab
    # select, is not on the page; ours writes nothing there until a crontab is chosen.
    assert "periodic-task-overrides" not in content
    assert "Translation:" not in content


def test_it_hands_a_refused_save_errors_to_the_inputs_by_parameter(admin_client):
    response = admin_client.post(ADD_URL, periodic_task_form(kwargs='{"times": 0}'))

    assert "times: Input should be greater than or equal to 1" in form_errors(response)["kwargs"][0]
    form = response.context["adminform"].form
    assert form.param_errors == {"times": ["Input should be greater than or equal to 1"]}
    assert "scheduler-param-errors" in response.content.decode()
    nothing_saved()
