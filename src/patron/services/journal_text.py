"""How an event's journal transaction is labelled, the same whichever path wrote it."""

from patron.domain.engine import AnyEvent, Decision
from patron.domain.events import Purchase, Refund


def journal_reference(event: AnyEvent) -> str:
    return f"order:{event.order_id}" if isinstance(event, (Purchase, Refund)) else f"event:{event.event_id}"


def journal_memo(event: AnyEvent, decision: Decision) -> str:
    fired = ", ".join(o.rule_id for o in decision.outcomes if o.fired)
    return f"{event.type} {event.event_id}: {decision.points:+d} points" + (f" ({fired})" if fired else "")
