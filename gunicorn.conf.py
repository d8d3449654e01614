"""gunicorn's settings for the Procfile's `web` process, read from the environment.

Why gthread (a few processes, each with a few threads) rather than sync workers:
bananaweb's pages are short and wait mostly on the database, and the upstream is
never called in a web request (the task workers do that); but image downloads and
ZIP archives stream for as long as the client reads them, and a page polls every
2 s. Threads keep a slow reader or a held-open connection from taking a whole
process, and let keep-alive connections stay open. The GIL costs little here:
the work is I/O.

Each thread may hold a database connection (CONN_MAX_AGE), so workers × threads
per machine, plus the task workers, must fit PostgreSQL's max_connections.

Every value can be overridden by the environment or gunicorn's own
GUNICORN_CMD_ARGS; the address is gunicorn's default: 0.0.0.0:$PORT when PORT is
set (a PaaS), else 127.0.0.1:8000 (behind a proxy on the same machine).
"""

import multiprocessing
import os

# Processes: WEB_CONCURRENCY (set by most PaaS for the dyno's size), else two per
# CPU: enough to use every core while some threads wait on the database.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count())
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
# With gthread the timeout watches the process, not a request: a download streaming
# for minutes is fine, a process stuck for this long is restarted.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
# On a restart or deploy, requests in flight (a download) get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT") or 30)
# Longer than the 2 s between a page's polls (gunicorn's default is 2 s: the server
# would close an idle connection just as the browser reuses it) and shorter than a
# proxy's upstream keep-alive (nginx: 60 s), so the proxy is never cut off mid-reuse.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE") or 5)
# A fresh process now and then, staggered, so that memory held by image decoding
# (Pillow) in one long-lived process is given back.
max_requests = 2000
max_requests_jitter = 200
# Errors and start-up to stderr; each request is logged by bananaweb itself.
errorlog = "-"
