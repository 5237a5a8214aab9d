"""hooksync's receiver: webhook intake, dispatch of Jobs, and commit status reporting.

A delivery flows through the stages in this order, and each stage imports only the ones
before it:

- `intake/`: read, verify, parse and route a delivery into Job requests (pure but for the
  HTTP protocol's edge);
- `dispatch/`: turn a Job request into a Job, or fold it into the one that waits; keep the
  resync CronJobs;
- `reporting/`: while this replica leads, follow the Jobs and post commit statuses;
- `pages/`: the status page and the run page, and "sync now" (a token-guarded POST that
  starts a resync of one target).

Beside them, any stage may use `jobview` (reading a Job, pure), `jobapi` (the Job API),
`state` (what the running parts share), `metrics` and `secrets`. `app` is the HTTP surface and
`cli` the command that starts it all; only `cli` imports `app`.
"""
