"""Self-tests of the world package."""
