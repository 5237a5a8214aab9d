"""Dispatch: turn a routed event into a Job (or fold it into one that waits), and keep one resync
CronJob per target."""
