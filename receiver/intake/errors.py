"""Why a webhook delivery was refused: one exception type per HTTP answer the receiver gives.

Each carries the status to answer with and a one-line reason that is safe to send back.
"""

from __future__ import annotations

from typing import ClassVar


class RejectedDelivery(Exception):
    """A delivery the receiver refuses; `status` is the HTTP answer, `reason` says why."""

    status: ClassVar[int] = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r})"


class MalformedDelivery(RejectedDelivery):
    """The body or a header is not what the provider documents (400); the reason names the field."""

    status: ClassVar[int] = 400


class SignatureError(RejectedDelivery):
    """The signature or token is missing, wrong, stale, ambiguous or not configured (401)."""

    status: ClassVar[int] = 401


class PayloadTooLarge(RejectedDelivery):
    """The body is longer than the configured limit (413)."""

    status: ClassVar[int] = 413


class UnsupportedContentType(RejectedDelivery):
    """The body's content type is not one the provider's parser reads (415)."""

    status: ClassVar[int] = 415


class ReceiverBusy(RejectedDelivery):
    """Bodies still arriving on other connections hold all the memory set aside for them (503);
    the sender should retry after a few seconds."""

    status: ClassVar[int] = 503
