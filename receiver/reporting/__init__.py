"""Reporting: while this replica leads, follow the Jobs, post commit statuses to the Git hosts and
keep one record per target."""
