"""One router per resource, each thin: parse, authorise, call a service, shape the reply."""
