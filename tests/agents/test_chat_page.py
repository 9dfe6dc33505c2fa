"""The agents' pages with the Django test client: who may see them, what they render, and the
"New chat" button. The script's live part speaks the websocket protocol the scheduler's
consumer tests cover; here we check the page hands it the right session and endpoints.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from agents import services
from agents.models import Message, Session
from tests.browser import (
    RECONNECT_TIMEOUT,
    TASK_TIMEOUT,
    off_the_loop,
    screenshot,
    signed_in_page,
)
from tests.clients import client_for
from tests.factories import make_agent, make_session, user_with

pytestmark = pytest.mark.django_db

VIEW_DASHBOARD = "scheduler.view_dashboard"


def _say(session: Session, text: str) -> None:
    services.message_answer(message=services.message_receive(session=session, content=text).message)


def _config(page: str) -> dict[str, Any]:
    match = re.search(r'<script id="chat-config" type="application/json">(.*?)</script>', page)
    assert match, "no chat-config on the page"
    return json.loads(match.group(1))


# --- Who may look --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/agents/", "/agents/sessions/{session}/"])
def test_it_sends_anonymous_visitors_to_the_admin_login(path):
    session = make_session()
    url = path.format(session=session.pk)

    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize(
    "user", [{"staff": False}, {"staff": True}], ids=["not staff", "staff without permission"]
)
@pytest.mark.parametrize("path", ["/agents/", "/agents/sessions/{session}/"])
def test_it_forbids_whoever_may_not_watch_the_dashboard(path, user):
    session = make_session()
    client = client_for(
        user_with(VIEW_DASHBOARD if not user["staff"] else "agents.add_message", **user)
    )

    response = client.get(path.format(session=session.pk))

    assert response.status_code == 403


def test_it_answers_404_for_an_unknown_session():
    client = client_for(user_with(VIEW_DASHBOARD))

    assert client.get("/agents/sessions/999999/").status_code == 404
    assert client.get("/agents/sessions/99999999999999999999999/").status_code == 404


# --- The chat page -------------------------------------------------------------------------------


def test_it_renders_the_conversation_escaped_with_the_live_connection_and_the_form():
    session = make_session()
    _say(session, "<script>alert('hi')</script> & more")
    client = client_for(user_with(VIEW_DASHBOARD, "agents.add_message"))

    response = client.get(f"/agents/sessions/{session.pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "&lt;script&gt;alert(&#x27;hi&#x27;)&lt;/script&gt; &amp; more" in page
    assert "<script>alert(" not in page
    for message in Message.objects.filter(session=session):
        assert f'data-message-id="{message.pk}"' in page
    assert page.index('class="msg msg-user"') < page.index('class="msg msg-assistant"')
    assert 'id="composer"' in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert 'id="connection"' in page
    assert "/static/agents/chat.js" in page
    assert "cdn." not in page
    config = _config(page)
    assert config["session"] == session.pk
    assert config["ws_path"] == "/ws/events/"
    assert config["ws_query"] == f"object=session:{session.pk}&backfill=50"
    assert config["messages_url"] == f"/api/sessions/{session.pk}/messages/"
    assert config["can_send"] is True


def test_it_escapes_what_reaches_the_pages_script_config():
    agent = make_agent("</script><b>x</b>")
    session = make_session(agent)
    client = client_for(user_with(VIEW_DASHBOARD))

    page = client.get(f"/agents/sessions/{session.pk}/").content.decode()

    assert "</script><b>" not in page
    assert "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in page


def test_it_offers_no_form_to_who_may_not_send():
    session = make_session()
    client = client_for(user_with(VIEW_DASHBOARD))

    page = client.get(f"/agents/sessions/{session.pk}/").content.decode()

    assert 'id="composer"' not in page
    assert "agents.add_message" in page
    assert _config(page)["can_send"] is False


def test_it_offers_no_form_in_a_closed_session():
    session = make_session()
    Session.objects.filter(pk=session.pk).update(status=Session.Status.CLOSED)
    client = client_for(user_with(superuser=True))

    page = client.get(f"/agents/sessions/{session.pk}/").content.decode()

    assert 'id="composer"' not in page
    assert "closed" in page
    assert _config(page)["can_send"] is False


def test_it_shows_the_latest_messages_of_a_long_session(monkeypatch):
    from agents import views

    monkeypatch.setattr(views, "MESSAGES_SHOWN", 3)
    session = make_session()
    for n in range(3):
        _say(session, f"message {n}")
    client = client_for(user_with(VIEW_DASHBOARD))

    page = client.get(f"/agents/sessions/{session.pk}/").content.decode()

    assert "message 0" not in page
    assert "message 2" in page
    assert page.count('class="msg msg-') == 3
    assert "Only the latest messages are shown" in page


def test_it_serves_its_script_and_styles_locally():
    client = client_for(user_with(VIEW_DASHBOARD))

    for path in ("/static/agents/chat.js", "/static/agents/chat.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"".join(response.streaming_content)  # type: ignore[attr-defined]


# --- The agents list and "New chat" --------------------------------------------------------------


def test_it_lists_agents_with_their_latest_sessions():
    helper, poster = make_agent("Helper"), make_agent("Poster", kind="poster")
    chat = make_session(helper)
    external = make_session(helper, channel="telegram", external_id="chat-9")
    client = client_for(user_with(VIEW_DASHBOARD, "agents.add_session"))

    page = client.get("/agents/").content.decode()

    assert "Helper" in page
    assert "Poster" in page
    assert f'href="/agents/sessions/{chat.pk}/"' in page
    assert f'href="/agents/sessions/{external.pk}/"' in page
    assert "chat-9" in page
    assert f'action="/agents/{helper.slug}/chats/"' in page
    assert f'action="/agents/{poster.slug}/chats/"' in page


def test_it_shows_no_new_chat_button_without_the_permission_or_for_a_paused_agent():
    active, paused = make_agent("Active"), make_agent("Paused", is_active=False)

    without = client_for(user_with(VIEW_DASHBOARD)).get("/agents/").content.decode()
    allowed = (
        client_for(user_with(VIEW_DASHBOARD, "agents.add_session")).get("/agents/").content.decode()
    )

    assert "New chat" not in without
    assert f'action="/agents/{active.slug}/chats/"' in allowed
    assert f'action="/agents/{paused.slug}/chats/"' not in allowed


def test_it_opens_a_new_web_chat_and_goes_to_its_page():
    agent = make_agent()
    user = user_with(VIEW_DASHBOARD, "agents.add_session")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/agents/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token

    response = client.post(f"/agents/{agent.slug}/chats/", {"csrfmiddlewaretoken": token.group(1)})

    session = Session.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/agents/sessions/{session.pk}/"
    assert (session.agent, session.channel, session.user) == (agent, "web", user)


def test_it_refuses_a_new_chat_without_the_permission_or_by_get():
    agent = make_agent()

    refused = client_for(user_with(VIEW_DASHBOARD)).post(f"/agents/{agent.slug}/chats/")
    by_get = client_for(user_with(superuser=True)).get(f"/agents/{agent.slug}/chats/")
    anonymous = Client().post(f"/agents/{agent.slug}/chats/")

    assert refused.status_code == 403
    assert by_get.status_code == 405
    assert anonymous.status_code == 302
    assert Session.objects.count() == 0


def test_it_says_why_no_chat_was_opened_with_a_paused_agent():
    agent = make_agent(is_active=False)
    client = client_for(user_with(superuser=True))

    response = client.post(f"/agents/{agent.slug}/chats/", follow=True)

    assert response.redirect_chain == [("/agents/", 302)]
    assert "paused" in response.content.decode()
    assert Session.objects.count() == 0


def test_it_answers_404_for_a_new_chat_with_an_unknown_agent():
    client = client_for(user_with(superuser=True))

    assert client.post("/agents/nobody/chats/").status_code == 404


# --- In a real browser (integration) -------------------------------------------------------------


def _chat_fixture() -> int:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", "pw-browser")
    agent = make_agent("Shop", brain_config={"keywords": {"price": "It is free."}})
    return make_session(agent).pk


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_reply_appears_live_and_the_page_reconnects_after_a_restart(browser, web_server):
    session_id = off_the_loop(_chat_fixture)
    page, errors = signed_in_page(
        browser,
        web_server,
        f"/agents/sessions/{session_id}/",
        username="admin",
        password="pw-browser",
    )
    page.evaluate("window.__sameDocument = true")

    page.fill("#composer-text", "What is the price?")
    page.press("#composer-text", "Enter")

    reply = page.locator(".msg-assistant .msg-content", has_text="It is free.")
    reply.wait_for(timeout=TASK_TIMEOUT)
    assert page.locator(".msg-user .msg-content").inner_text() == "What is the price?"
    page.wait_for_selector("#pending", state="hidden")
    assert page.input_value("#composer-text") == ""
    screenshot(page, "chat.png")

    web_server.stop()
    page.wait_for_selector("#connection[data-state=reconnecting]", timeout=RECONNECT_TIMEOUT)
    assert "Reconnecting" in page.inner_text("#connection")
    web_server.start()
    page.wait_for_selector("#connection[data-state=live]", timeout=RECONNECT_TIMEOUT)

    page.fill("#composer-text", "And the price again?")
    page.click("#composer button[type=submit]")
    page.locator(".msg-assistant").nth(1).wait_for(timeout=TASK_TIMEOUT)
    assert page.locator(".msg").count() == 4
    assert page.evaluate("window.__sameDocument") is True
    assert errors == []
