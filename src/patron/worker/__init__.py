"""Background work: a job queue in the application's own database, periodic jobs, and the worker that runs them
with the outbox and webhook deliveries (`patron worker`)."""
