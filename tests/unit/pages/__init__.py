"""Tests of receiver/pages."""
