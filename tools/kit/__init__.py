"""One kit for everything that starts Baetyl-Py's processes from outside: the demo, the benchmarks
and the end-to-end tests (issue 13).

- `progress`: `[demo] step ... ok (1.2 s)` lines on a terminal.
- `procs`: is it alive, stop it (SIGTERM, then SIGKILL), start it detached, tail its log,
  run a command and stream its output, who holds a port.
- `waiting`: wait until a check passes, with a deadline and a liveness check.
- `rest`: the cloud's REST API as a client, and waiting until a server answers `/health`.
"""
