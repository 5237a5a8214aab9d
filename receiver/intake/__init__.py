"""Intake: read a webhook delivery, verify it came from the Git host, parse it into an event and
route the event to targets. Pure but for the HTTP protocol's edge (`protocol.py`)."""
