"""The one-command local run (``make run`` = ``python -m backend.local``):
:mod:`.supervisor` starts the embedded Redis and MongoDB-wire servers
(:mod:`.embedded`) where nothing answers, keeps the local secrets, and runs the
Procfile's processes under honcho."""
