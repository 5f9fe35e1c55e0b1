"""The worker kit that runs inside a Worker Pool instance (`manage.py runworker <class>`).

Handlers are plain functions registered per class with `@handler(slug)`; they take the decoded
payload and a WorkContext, raise TransientError or PermanentError to say how a failure should be
treated, and return a small result summary. See worker.py for how deliveries are settled.
"""

from workloads.runtime.context import WorkContext
from workloads.runtime.errors import PermanentError, TransientError, error_signature
from workloads.runtime.registry import get_handler, handler

__all__ = ["PermanentError", "TransientError", "WorkContext", "error_signature", "get_handler", "handler"]
