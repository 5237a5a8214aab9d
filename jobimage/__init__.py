"""hooksync's Job: converge one target namespace to what Git says."""
