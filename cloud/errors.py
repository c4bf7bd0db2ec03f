"""The cloud's domain errors: raised by the store and the services, answered in one place each.

The REST side turns them into responses in `cloud/api/http.py` (its error middleware); the MQTT
side into `…/rejected` answers in `cloud/mqtt/handlers.py`. Codes follow Baetyl's
(`ErrResourceNotFound`, ...) so its users' scripts keep working; the HTTP status of each is fixed
here, next to its code.

This module is the bottom layer of the cloud (decision #112, checked by import-linter): the store
raises `Conflict` when a concurrent writer won or a name is taken, the services raise the rest,
and it imports nothing of the project, so every layer may import it.
"""

from __future__ import annotations


class CloudError(Exception):
    """Base of every error a request can end with; `status` and `code` go into the response."""

    status = 500
    code = "UnknownError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(CloudError):
    """The request is malformed or breaks a rule; nothing was changed."""

    status = 400
    code = "ErrRequestParamInvalid"


class NotFound(CloudError):
    """The named resource does not exist in the caller's namespace."""

    status = 404
    code = "ErrResourceNotFound"

    def __init__(self, kind: str, name: str, namespace: str | None = None) -> None:
        where = f" in namespace({namespace})" if namespace else ""
        super().__init__(f"The ({kind}) resource ({name}) is not found{where}.")
        self.kind = kind
        self.name = name


class Unauthenticated(CloudError):
    """No valid credential (a bearer token, or what the authentication plug-in takes)."""

    status = 401
    code = "ErrRequestAccessDenied"


class Forbidden(CloudError):
    """The token's role does not allow this request."""

    status = 403
    code = "ErrRequestForbidden"


class InUse(CloudError):
    """The resource is referenced by another one and cannot be deleted."""

    status = 403
    code = "ErrResourceHasBeenUsed"


class Conflict(CloudError):
    """The resource already exists, or a concurrent change won."""

    status = 409
    code = "ErrResourceConflict"


class QuotaExceeded(CloudError):
    """A namespace quota would be exceeded."""

    status = 400
    code = "ErrLicenseQuota"


class InvalidToken(CloudError):
    """An install token that is malformed, tampered with, expired or already used (DESIGN §10)."""

    status = 400
    code = "ErrInvalidToken"


class Unavailable(CloudError):
    """The cloud cannot serve this now; the message says what the operator must set up."""

    status = 503
    code = "ErrServiceUnavailable"
