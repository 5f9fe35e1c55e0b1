"""Errors that services raise for the caller to show: the message is meant for a person."""

# How long a client should wait after the database was unreachable (a failover takes about this
# long): the API's and the dashboards' Retry-After.
DATABASE_RETRY_AFTER_SECONDS = 5


class ApplicationError(Exception):
    """A request that cannot be carried out as asked (a conflict, a guard, a refused filter).

    `code` is a stable machine-readable reason; `status` the HTTP status the API maps it to.
    """

    def __init__(self, message: str, *, code: str = "refused", status: int = 409, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra or {}


class NotFoundError(ApplicationError):
    def __init__(self, message: str, *, code: str = "not_found"):
        super().__init__(message, code=code, status=404)
