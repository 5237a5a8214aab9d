"""Tests of receiver/intake."""
