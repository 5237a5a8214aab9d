"""The contract that the receiver and the Job share: configuration, names, the Job's CLI."""
