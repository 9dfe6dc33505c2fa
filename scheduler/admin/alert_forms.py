"""The forms of the alert admins (scheduler/admin/alerts.py): a channel, a rule, and the note of
an acknowledgement.

They only translate. Each runs the checks of the service that will save it (`channel_save`'s
settings check, `rule_clean`) and puts every message on the field it names, so that a form with
an error saves nothing; the admin then saves through the service itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django import forms
from django.utils.html import format_html, format_html_join

from scheduler.admin.periodic_tasks import TimeZoneInput
from scheduler.core.durations import duration_seconds, duration_written
from scheduler.models import AlertChannel, AlertRule
from scheduler.services import RuleInput, ScheduleError
from scheduler.services.alerts import channel_config_clean, channel_kind, channel_kinds, rule_clean

# What each built-in kind reads from its settings (a deployment's own kinds say so themselves).
CONFIG_EXAMPLES = (
    ("email", '{"to": ["ops@example.com"]}'),
    ("webhook", '{"url": "https://example.com/hook", "secret_env": "OPS_HOOK_SECRET"}'),
    ("slack", '{"url": "https://hooks.slack.com/services/..."}'),
    ("signal", "{}"),
)


def add_service_errors(
    form: forms.BaseForm, exc: ScheduleError, *, skip: Iterable[str] = ()
) -> None:
    """Each of a ScheduleError's messages on the field it names (or on the form as a whole)."""
    for name, messages in exc.errors.items():
        if name in skip:
            continue
        if name in form.fields:
            for message in messages:
                form.add_error(name, message)
        else:
            form.add_error(None, [f"{name}: {message}" for message in messages])


def kind_label(name: str) -> str:
    try:
        return f"{name}: {channel_kind(name).label}"
    except ScheduleError:
        return f"{name} (cannot be loaded)"


class AlertChannelForm(forms.ModelForm):
    kind = forms.ChoiceField(label="Kind")
    config = forms.JSONField(
        label="Settings (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField"}),
        help_text=format_html(
            "A JSON object, as the kind reads it: <ul>{}</ul>Secrets are not stored here: a "
            "webhook names the environment variable holding its signing key.",
            format_html_join("", "<li>{}: <code>{}</code></li>", CONFIG_EXAMPLES),
        ),
    )

    class Meta:
        model = AlertChannel
        fields = ("name", "kind", "config", "enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "kind" in self.fields:
            choices = [(name, kind_label(name)) for name in sorted(channel_kinds())]
            stored = self.instance.kind
            if stored and stored not in channel_kinds():
                # Shown as it is; saving it fails with the list of kinds.
                choices.append((stored, f"{stored} (not a registered kind)"))
            cast(forms.ChoiceField, self.fields["kind"]).choices = choices

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        kind = data.get("kind")
        if not kind or self.has_error("config"):
            return data
        config = data.get("config")
        try:
            data["config"] = channel_config_clean(kind, config if config is not None else {})
        except ScheduleError as exc:
            add_service_errors(self, exc)
        return data


class SecondsField(forms.CharField):
    """A period as staff write it ("10m", "4h", "90"), as whole seconds."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return duration_written(value)
        return value

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        try:
            return duration_seconds(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class AlertRuleForm(forms.ModelForm):
    # Plain numbers: rule_clean says what a trigger takes ("a positive number", not "0").
    threshold = forms.IntegerField(
        label="N", required=False, help_text="Failures in a row, or a queue's depth."
    )
    duration = SecondsField(
        label="Duration (D or T)",
        required=False,
        help_text=(
            "How long: a run's longest (long run), the period without success, how long beat "
            "may lack a leader or a queue a worker, how long a queue may stay deep. 30s, 10m, "
            "2h, 1d or seconds."
        ),
    )
    repeat_interval = SecondsField(
        label="Repeat every",
        help_text="An open incident is told again after this long (4h); 0: never again.",
    )
    quiet_timezone = forms.CharField(label="Quiet window's time zone", widget=TimeZoneInput())

    class Meta:
        model = AlertRule
        fields = (
            "name",
            "enabled",
            "description",
            "trigger",
            "target_type",
            "target",
            "threshold",
            "duration",
            "channels",
            "repeat_interval",
            "quiet_start",
            "quiet_end",
            "quiet_timezone",
        )
        help_texts = {
            "target": "A schedule's name, a catalog task, an agent's slug, a tournament, or a "
            "queue, as the target type says; empty for everything.",
            "quiet_start": "Notifications wait out this daily window (e.g. 22:00 to 07:00); "
            "incidents still open in it.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rule_input: RuleInput | None = None
        if "repeat_interval" in self.fields and self.instance._state.adding:
            self.initial.setdefault("repeat_interval", RuleInput.repeat_interval)

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        failed = {name for name in self.fields if self.has_error(name)}
        channels = data.get("channels") or []
        rule = RuleInput(
            name=data.get("name") or self.instance.name or "",
            trigger=data.get("trigger") or "",
            target_type=data.get("target_type") or AlertRule.Target.ALL,
            target=data.get("target") or "",
            threshold=data.get("threshold"),
            duration=data.get("duration"),
            channels=[channel.name for channel in channels],
            repeat_interval=data.get("repeat_interval") or 0,
            quiet_start=data.get("quiet_start"),
            quiet_end=data.get("quiet_end"),
            quiet_timezone=data.get("quiet_timezone") or "UTC",
            enabled=bool(data.get("enabled")),
            description=data.get("description") or "",
        )
        try:
            rule_clean(rule)
        except ScheduleError as exc:
            # A field's own error (unreadable duration, unknown choice) already says it.
            add_service_errors(self, exc, skip=failed)
            return data
        if not failed:
            self.rule_input = rule
        return data


class AcknowledgeForm(forms.Form):
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="What you are doing about it: shown on the incident and in its audit trail.",
    )
