"""Where the agent is (``default_target``, ``grpc_target``) and the bearer token on every call."""

from __future__ import annotations

import grp
import os
import pwd
import stat

import grpc

from ._errors import BoxcarError


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


def check_socket(target: str) -> None:
    """Refuses, before any connection, a unix socket someone other than the agent may have put
    there: one in a directory others may write to (but the group ``$BOXCAR_SOCKET_GROUP`` names),
    or one whose directory or socket belongs to neither root, this user, nor the agent's user
    (``$BOXCAR_AGENT_USER``, the systemd unit's ``boxcar``). Whoever could place a listener there
    would receive the run's data. A directory or socket that is not there yet passes: there is
    nothing to connect to, and the check runs again at the next connection."""
    if not target.startswith("unix:"):
        return
    path = target[len("unix://"):] if target.startswith("unix://") else target[len("unix:"):]
    directory = os.path.dirname(path) or "."
    owners = {0, os.getuid()}
    agent_user = os.environ.get("BOXCAR_AGENT_USER")
    if agent_user:
        try:
            owners.add(pwd.getpwnam(agent_user).pw_uid)
        except KeyError:
            raise BoxcarError(f"BOXCAR_AGENT_USER names {agent_user}, and this machine has no such user",
                              code="FAILED_PRECONDITION") from None
    group = os.environ.get("BOXCAR_SOCKET_GROUP")
    try:
        group_id = grp.getgrnam(group).gr_gid if group else None
    except KeyError:
        group_id = None
    for place in (directory, path):
        try:
            info = os.stat(place)
        except FileNotFoundError:
            return
        if info.st_uid not in owners:
            raise BoxcarError(
                f"refusing the agent socket {path}: {place} belongs to {_user(info.st_uid)}, who could be listening in the"
                " agent's place. If that user runs the agent, set BOXCAR_AGENT_USER to it; else remove the directory"
                " (as its owner or root) or point BOXCAR_SOCKET at the agent's own socket.", code="PERMISSION_DENIED")
    info = os.stat(directory)
    group_may_write = info.st_mode & stat.S_IWGRP and info.st_gid != group_id
    if info.st_mode & stat.S_IWOTH or group_may_write:
        raise BoxcarError(
            f"refusing the agent socket {path}: other users may write to its directory {directory}"
            f" (mode {stat.S_IMODE(info.st_mode):o}) and put their own listener there; give the agent a directory"
            " of its own (its default, $XDG_RUNTIME_DIR/boxcar, is one)", code="PERMISSION_DENIED")


def _user(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


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
