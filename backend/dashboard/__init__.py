"""rq-dashboard, locked: ``python -m backend.dashboard [--bind H] [--port P]``.

rq-dashboard 0.9 as the project serves it, on waitress rather than Flask's development
server, needing only REDIS_URL and DASHBOARD_USERNAME / DASHBOARD_PASSWORD:

- ``guard``: HTTP basic auth on every answer (compared in constant time); actions (empty,
  requeue, delete, compact) only as POSTs from the dashboard's own pages (Origin, or else
  Referer, must be the dashboard), so neither another site nor a link can trigger one.
- ``json_only``: every RQ object the dashboard reads is decoded with RQ's JSON serializer;
  data that is not JSON is refused, never unpickled.
- ``escaping``: every JSON answer is HTML-escaped (its pages put it into ``innerHTML``),
  and every page carries a Content-Security-Policy whose scripts need the page's nonce.
- ``kept``: the finished, failed and cancelled lists say how long RQ keeps those jobs
  (RQ_RESULT_TTL, RQ_FAILURE_TTL) and where they are kept for good; their counts leave
  out expired jobs, as the lists do.
"""

from backend.dashboard.app import create_app

__all__ = ["create_app"]
