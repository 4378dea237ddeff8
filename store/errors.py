"""Errors the store raises. Callers map them to their own surface.

StoreError
 ├── InvalidInput        a value breaks a rule (bad email, negative cost, …)
 ├── NotFound            the user, key or model does not exist
 ├── Conflict            it exists already (an email that is taken)
 ├── WrongPassword       a password given to confirm an action is not the user's
 ├── InsufficientCredits the balance does not cover the amount
 ├── KeyNotUsable        the key was revoked or expired (`revoked`), or it or its
 │                       user's API access is disabled, when a request came to be charged
 ├── KeyBudgetExceeded   the key's own budget for its period cannot cover the hold
 ├── ModelNotAllowed     the model is outside the key's allow-list
 └── SignupRefused       sign-up is closed, or needs a valid unused invite (`reason`)
"""


class StoreError(Exception):
    """Base class; the message is safe to show to the person who caused it."""


class InvalidInput(StoreError):
    pass


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass


class WrongPassword(StoreError):
    pass


class InsufficientCredits(StoreError):
    pass


class KeyNotUsable(StoreError):
    def __init__(self, message: str, *, revoked: bool) -> None:
        super().__init__(message)
        self.revoked = revoked


class KeyBudgetExceeded(StoreError):
    pass


class ModelNotAllowed(StoreError):
    pass


class SignupRefused(StoreError):
    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "closed" | "invite"
