"""Tests of receiver/reporting."""
