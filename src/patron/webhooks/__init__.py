"""Webhooks: subscriptions per event type, signed deliveries of outbox messages, retries, dead letters, replay."""
