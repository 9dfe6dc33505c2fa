from __future__ import annotations

from django.db import models
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents.models import Agent


class Tournament(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        LIVE = "live", "Live"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    name = models.CharField(max_length=200, unique=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.SCHEDULED, db_index=True
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    symbols = models.JSONField(default=list)  # ["AAPL", "MSFT", ...]
    initial_cash = models.DecimalField(max_digits=14, decimal_places=2, default=10_000)
    decision_interval = models.PositiveIntegerField(default=300, help_text="seconds")
    market_seed = models.BigIntegerField(default=0)
    # The periodic task that runs its agents: made when it goes live, disabled when it ends.
    periodic_task = models.OneToOneField(
        PeriodicTask,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tournament",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="tournaments_tournament_ends_after_it_starts",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Entry(models.Model):
    """An agent in a tournament: its portfolio, rank and where its strategy is at."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        STALE = "stale", "Stale"
        RECOVERING = "recovering", "Recovering"
        FINISHED = "finished", "Finished"

    tournament = models.ForeignKey(Tournament, on_delete=models.CASCADE, related_name="entries")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="entries")
    strategy = models.CharField(max_length=30, default="momentum")
    cash = models.DecimalField(max_digits=14, decimal_places=2)
    positions = models.JSONField(default=dict)  # {"AAPL": 10}
    equity = models.DecimalField(max_digits=14, decimal_places=2)
    rank = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    decision_count = models.PositiveIntegerField(default=0)
    last_tick = models.IntegerField(default=-1)
    state = models.JSONField(default=dict, blank=True)  # the strategy's memory
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rank", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tournament", "agent"], name="tournaments_entry_one_per_agent"
            )
        ]
        verbose_name_plural = "entries"

    def __str__(self) -> str:
        return f"{self.agent} in {self.tournament}"


class Decision(models.Model):
    """One decision of an entry at one market tick: made once, whatever redelivers it."""

    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="decisions")
    tick = models.IntegerField()
    reasoning = models.TextField(blank=True)
    orders = models.JSONField(default=list)  # what the strategy asked for, before the checks
    task_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["entry", "tick"]
        # Retention deletes decisions by age, a batch at a time (tournaments/retention.py).
        indexes = [models.Index(fields=["created_at"], name="tournaments_decision_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["entry", "tick"], name="tournaments_decision_once_per_tick"
            )
        ]

    def __str__(self) -> str:
        return f"{self.entry} at tick {self.tick}"


class Trade(models.Model):
    class Side(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"

    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="trades")
    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="trades")
    symbol = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=2)
    tick = models.IntegerField()
    executed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-executed_at", "-id"]
        indexes = [
            models.Index(fields=["entry", "tick"]),
            # Retention deletes trades by age, a batch at a time (tournaments/retention.py).
            models.Index(fields=["executed_at"], name="tournaments_trade_executed"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol} @ {self.price}"


class EquitySnapshot(models.Model):
    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="snapshots")
    at = models.DateTimeField(default=timezone.now)
    tick = models.IntegerField()
    equity = models.DecimalField(max_digits=14, decimal_places=2)
    cash = models.DecimalField(max_digits=14, decimal_places=2)
    rank = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["entry", "at"]
        indexes = [
            models.Index(fields=["entry", "at"]),
            # Retention deletes snapshots by age, a batch at a time (tournaments/retention.py).
            models.Index(fields=["at"], name="tournaments_snapshot_at"),
        ]

    def __str__(self) -> str:
        return f"{self.entry}: {self.equity} at tick {self.tick}"
