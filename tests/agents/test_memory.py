"""The agents' memory upkeep (the Puti seed's memory backup and cleanup, every 6 hours)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from agents.memory import EXPIRES, agent_state_set, memory_backup, memory_prune
from agents.models import Agent, Session
from agents.tasks import backup_memory, cleanup_memory
from tests.factories import make_agent, make_session

pytestmark = pytest.mark.django_db


def test_the_backup_holds_every_agents_state_and_session_summaries_and_keeps_the_newest(
    tmp_path, settings
):
    settings.BACKUP_DIR = tmp_path
    settings.BACKUP_KEEP = 2
    helper = make_agent("Helper")
    agent_state_set(agent=helper, key="tone", value="dry")
    session = make_session(helper)
    Session.objects.filter(pk=session.pk).update(summary="They asked about cron.")

    written = [backup_memory() for _ in range(3)]

    folder = tmp_path / "agents"
    kept = sorted(path.name for path in folder.glob("memory-*.json"))
    names = [Path(result["path"]).name for result in written]
    assert kept == names[1:]
    assert written[2]["removed"] == [names[0]]
    document = json.loads((folder / kept[-1]).read_text())
    (agent,) = [a for a in document["agents"] if a["slug"] == helper.slug]
    assert agent["state"] == {"tone": "dry"}
    assert [s["summary"] for s in agent["sessions"]] == ["They asked about cron."]
    assert not list(folder.glob("*.partial"))


def test_the_cleanup_drops_only_the_state_keys_past_their_time_to_live():
    agent = make_agent("Helper")
    agent_state_set(agent=agent, key="mood", value="curious", ttl=timedelta(hours=1))
    agent_state_set(agent=agent, key="name", value="Ada")  # no time to live: kept for ever

    assert memory_prune(now=timezone.now() + timedelta(minutes=30)) == {}
    assert cleanup_memory() == {"dropped": {}}
    dropped = memory_prune(now=timezone.now() + timedelta(hours=2))

    assert dropped == {agent.slug: ["mood"]}
    assert Agent.objects.get(pk=agent.pk).state == {"name": "Ada"}
    assert EXPIRES not in Agent.objects.get(pk=agent.pk).state


def test_a_key_set_again_without_a_time_to_live_stays():
    agent = make_agent("Helper")
    agent_state_set(agent=agent, key="mood", value="curious", ttl=timedelta(seconds=1))
    agent_state_set(agent=agent, key="mood", value="calm")

    assert memory_prune(now=timezone.now() + timedelta(days=1)) == {}
    assert Agent.objects.get(pk=agent.pk).state == {"mood": "calm"}


def test_the_backup_goes_through_a_partial_file_and_reads_back(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path
    make_agent("Helper")

    result = memory_backup()

    document = json.loads(Path(result["path"]).read_text())
    assert [agent["slug"] for agent in document["agents"]] == ["helper"]
    assert result["agents"] == 1
    assert sorted(path.suffix for path in (tmp_path / "agents").iterdir()) == [".json"]
