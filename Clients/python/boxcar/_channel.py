"""Where the agent is (``default_target``, ``grpc_target``) and the bearer token on every call."""

from __future__ import annotations

import os

import grpc


def default_target() -> str:
    """``$BOXCAR_SOCKET``, else the agent's default socket: ``$XDG_RUNTIME_DIR/boxcar/agent.sock``,
    else ``/tmp/boxcar-<uid>/agent.sock``."""
    configured = os.environ.get("BOXCAR_SOCKET")
    if configured:
        return configured
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return f"{runtime}/boxcar/agent.sock"
    return f"/tmp/boxcar-{os.getuid()}/agent.sock"


def grpc_target(target: str) -> str:
    """A socket path (absolute or ./relative) becomes ``unix://PATH``; ``host:port`` and URIs
    with a scheme are used as given."""
    if "://" in target or target.startswith("unix:"):
        return target
    if target.startswith("/") or target.startswith("."):
        return "unix://" + os.path.abspath(target)
    return target


class _TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = list(details.metadata or []) + [self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def with_token(channel: grpc.Channel, token: str) -> grpc.Channel:
    return grpc.intercept_channel(channel, _TokenInterceptor(token))
