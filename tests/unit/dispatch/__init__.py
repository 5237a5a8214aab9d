"""Tests of receiver/dispatch."""
