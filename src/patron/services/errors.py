"""Failures a caller can act on. The API turns them into problem+json; the CLI into a message."""


class ServiceError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NotFound(ServiceError):
    status = 404
    title = "Not found"


class Invalid(ServiceError):
    status = 422
    title = "Invalid request"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class IdempotencyConflict(Conflict):
    title = "Idempotency key reused with a different request"


class InsufficientPointsError(Conflict):
    title = "Not enough points"


class OutOfStock(Conflict):
    title = "Out of stock"


class NotEligible(Conflict):
    title = "Not eligible"
