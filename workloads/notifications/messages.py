"""What each channel kind sends for one incident change, built from the change's `context` (a
JSON dict frozen when the change was written; see services.incident_context).

- webhook: our own JSON document, schema "controlplane.notification/v1" (docs/api.md);
- slack: an incoming-webhook message with Block Kit blocks. Incoming webhooks cannot edit a posted
  message (chat.update needs a bot token), so an update or resolve is a new message that names the
  incident key;
- pagerduty: an Events API v2 event. Every change of one incident carries the same dedup_key (the
  incident key): a severity change re-triggers the same alert, then acknowledge and resolve;
- email: a subject and a plain-text body.
"""

from __future__ import annotations

SCHEMA = "controlplane.notification/v1"
PAGERDUTY_SEVERITY = {"page": "critical", "ticket": "warning", "": "info"}
_VERB = {
    "trigger": "Opened",
    "update": "Updated",
    "acknowledge": "Acknowledged",
    "resolve": "Resolved",
    "test": "Test",
}


def summary(context: dict) -> str:
    """One line: what happened to what (PagerDuty allows 1024 characters; Slack headers 150)."""
    if context.get("event") == "test":
        return f"Test notification from the control plane (channel {context.get('channel', '')})"
    incident = context["incident"]
    wc = context["workload_class"]
    severity = incident["severity"]
    verb = _VERB.get(context["event"], context["event"])
    problem = context.get("problem", "is burning its error budget")
    text = f"[{verb}] {severity.upper()}: {wc['slug']} {context['slo']['kind_label']} {problem}"
    if context.get("deployment"):
        text += f" ({context['deployment']['note']})"
    return text[:1024]


def webhook_body(context: dict, *, delivery_id: int) -> dict:
    """The generic webhook's JSON document (versioned; fields are only ever added within v1)."""
    return {"schema": SCHEMA, "delivery_id": delivery_id, "summary": summary(context), **context}


def _alert_lines(context: dict) -> str:
    if context.get("detail"):
        return context["detail"]  # an incident without burn-rate windows says what it measured
    lines = []
    for alert in context.get("alerts", []):
        lines.append(
            f"• `{alert['rule']}` {alert['severity']}: {alert['long_burn_rate']:.1f}× over {alert['long_window']}, "
            f"{alert['short_burn_rate']:.1f}× over {alert['short_window']} (fires at {alert['factor']:g}×)"
        )
    return "\n".join(lines) or "No alert window is burning any more."


def slack_message(context: dict) -> dict:
    """An incoming-webhook payload: `text` is the notification fallback, `blocks` the message."""
    text = summary(context)
    if context.get("event") == "test":
        return {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f":white_check_mark: {text}"}}],
        }
    incident = context["incident"]
    wc = context["workload_class"]
    details = [
        {
            "type": "mrkdwn",
            "text": f"*Class*\n<{context['class_url']}|{wc['slug']}> ({wc['owner_team']}, {wc['tier']})",
        },
        {"type": "mrkdwn", "text": f"*Severity*\n{incident['severity']}"},
        {"type": "mrkdwn", "text": f"*SLO*\n{context['slo']['objective']}"},
        {"type": "mrkdwn", "text": f"*Opened*\n{incident['opened_at']}"},
    ]
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150]}},
        {"type": "section", "fields": details},
        {"type": "section", "text": {"type": "mrkdwn", "text": _alert_lines(context)}},
    ]
    if incident.get("acknowledged_by"):
        note = f": {incident['acknowledgement_note']}" if incident.get("acknowledgement_note") else ""
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"Acknowledged by {incident['acknowledged_by']}{note}"},
            }
        )
    follow_up = "" if context["event"] == "trigger" else " · this updates the earlier message for this incident"
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Incident `{incident['key']}` · <{context['runbook_url']}|Runbook>{follow_up}",
                }
            ],
        }
    )
    return {"text": text, "blocks": blocks}


def pagerduty_event(context: dict, *, routing_key: str, client_url: str) -> dict:
    """An Events API v2 event (POST https://events.pagerduty.com/v2/enqueue)."""
    if context.get("event") == "test":
        return {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": context["test_key"],
            "payload": {
                "summary": summary(context),
                "source": "controlplane",
                "severity": "info",
                "timestamp": context["sent_at"],
            },
            "client": "Control plane",
            "client_url": client_url,
        }
    incident = context["incident"]
    action = {"trigger": "trigger", "update": "trigger", "acknowledge": "acknowledge", "resolve": "resolve"}[
        context["event"]
    ]
    event = {"routing_key": routing_key, "event_action": action, "dedup_key": incident["key"]}
    if action != "trigger":
        # PagerDuty needs only the key to acknowledge or resolve; a payload is ignored.
        return event
    wc = context["workload_class"]
    event["payload"] = {
        "summary": summary(context),
        "source": f"controlplane/{wc['slug']}",
        "severity": PAGERDUTY_SEVERITY[incident["severity"]],
        "timestamp": incident["opened_at"],
        "component": wc["slug"],
        "group": wc["owner_team"],
        "class": context.get("alert_class") or f"slo-burn:{context['slo']['kind']}",
        "custom_details": {
            "slo": context["slo"]["objective"],
            "alerts": context.get("alerts", []),
            "tier": wc["tier"],
        },
    }
    event["links"] = [
        {"href": context["class_url"], "text": f"{wc['slug']} in the control plane"},
        {"href": context["runbook_url"], "text": "Runbook"},
    ]
    event["client"] = "Control plane"
    event["client_url"] = client_url
    return event


def email_message(context: dict) -> tuple[str, str]:
    """(subject, plain-text body)."""
    subject = summary(context)
    if context.get("event") == "test":
        return subject, "This is a test notification. If you can read it, the channel works.\n"
    incident = context["incident"]
    lines = [
        subject,
        "",
        f"Incident: {incident['key']} ({incident['state']}, severity {incident['severity']})",
        f"SLO: {context['slo']['objective']}",
        f"Opened: {incident['opened_at']}",
    ]
    if incident.get("resolved_at"):
        lines.append(f"Resolved: {incident['resolved_at']}")
    if incident.get("acknowledged_by"):
        lines.append(f"Acknowledged by {incident['acknowledged_by']}: {incident.get('acknowledgement_note', '')}")
    lines += ["", _alert_lines(context).replace("`", ""), "", f"Class: {context['class_url']}"]
    lines.append(f"Runbook: {context['runbook_url']}")
    return subject, "\n".join(lines) + "\n"
