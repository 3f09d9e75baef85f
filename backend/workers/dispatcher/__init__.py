"""The side that feeds the workers and follows them, in one process
(``python -m backend.workers.dispatcher``):

* :mod:`.dispatch`: STANDARD queue -> the RQ queue of each job's executor;
* :mod:`.recorder`: the workers' report stream -> the data service, in batches;
* :mod:`.reconciler`: unfinished jobs that nothing holds are sent again;
* :mod:`.webhooks`: finished jobs POSTed to their callback URLs, retried until delivered.
"""

from backend.workers.dispatcher.dispatch import Dispatcher
from backend.workers.dispatcher.reconciler import Reconciler
from backend.workers.dispatcher.recorder import Recorder
from backend.workers.dispatcher.webhooks import WebhookSender

__all__ = ["Dispatcher", "Reconciler", "Recorder", "WebhookSender"]
