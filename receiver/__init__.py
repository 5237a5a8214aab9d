"""hooksync's receiver: webhook intake, dispatch of Jobs, and commit status reporting."""
