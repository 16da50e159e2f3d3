"""How the agent says no: ``BoxcarError`` for the caller, and what the SDK reads from a failed
call (its status, and the reason the agent sends in the trailing metadata)."""

from __future__ import annotations

from typing import Optional, Tuple

import grpc


class BoxcarError(Exception):
    """A call the agent refused or could not answer; ``code`` is the gRPC status code name and
    ``reason`` the agent's own word for a refusal (``limit``, ``disk-full``, … or None)."""

    def __init__(self, message: str, code: str = "UNKNOWN", reason: Optional[str] = None):
        super().__init__(message)
        self.code = code
        self.reason = reason


# The status codes of a request the agent will never take as it is: bad input, no such parent.
_REFUSALS = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
)


def is_refusal(error: grpc.RpcError) -> bool:
    """Whether the request was refused for good (dropped and counted), as opposed to an outage or
    a full disk (retried). RESOURCE_EXHAUSTED is both a limit and a full disk: the reason the agent
    sends in the trailing metadata (``boxcar-reason``) tells them apart, and one without a reason
    (a message over the transport's size limit, refused before the agent saw it) is a limit too:
    sent again, it would be refused again."""
    code, _ = status(error)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return reason(error) != "disk-full"
    return code in _REFUSALS


def reason(error: grpc.RpcError) -> Optional[str]:
    """The agent's machine-readable reason for a refusal (``invalid-argument``, ``not-found``,
    ``limit``, ``disk-full``, ``busy``, ``shutting-down``), or None."""
    metadata = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in metadata or ():
        if key == "boxcar-reason":
            return value
    return None


def status(error: grpc.RpcError) -> Tuple[Optional[grpc.StatusCode], str]:
    """The status code and details of a failed call (None for an error without them)."""
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else None
    return code, details or str(error)


def error_from_rpc(error: grpc.RpcError) -> BoxcarError:
    code, details = status(error)
    name = code.name if code is not None else "UNKNOWN"
    return BoxcarError(f"{name}: {details}", name, reason(error))
