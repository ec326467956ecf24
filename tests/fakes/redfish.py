"""FakeRedfish: an in-process stand-in for the DMTF redfish client, serving a JSON tree.

RedfishLink takes a client factory; this one returns clients that answer from a dict of
path -> document (tests/fakes/redfish_trees.py), with per-path status codes, malformed bodies,
session expiry and transport exceptions (the library's own exception types), and records
every request. The real library and a real HTTPS server are exercised by the integration tests.
"""

# ruff: noqa: S107 - made-up test passwords, asserted never to leak
from __future__ import annotations

import json
from typing import Any

from redfish.rest.v1 import (
    AuthMethod,
    InvalidCredentialsError,
    RetriesExhaustedError,
    SessionCreationError,
)

from tests.fakes.redfish_trees import V1, Tree


class FakeResponse:
    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text


class FakeRedfish:
    """The service: tree, faults, and what the clients did."""

    def __init__(self, tree: Tree, username: str = "root", password: str = "calvin") -> None:
        self.tree = tree
        self.username, self.password = username, password
        self.status: dict[str, int] = {}  # path -> HTTP status to answer
        self.malformed: set[str] = set()
        self.raise_on_get: BaseException | None = None  # e.g. a timeout
        self.session_service = True
        self.sessions = 0  # valid session logins
        self.expired = False
        self.logouts = 0
        self.requests: list[tuple[str, dict[str, str] | None]] = []
        self.clients: list[dict[str, Any]] = []  # constructor kwargs (cafile, timeout, ...)

    def factory(self, **kwargs: Any) -> FakeClient:
        self.clients.append({k: v for k, v in kwargs.items() if k != "password"})
        return FakeClient(self, kwargs.get("username", ""), kwargs.get("password", ""))


class FakeClient:
    def __init__(self, service: FakeRedfish, username: str, password: str) -> None:
        self.service = service
        self._ok = (username, password) == (service.username, service.password)
        self.root_resp = FakeResponse(200, json.dumps(service.tree[V1]))
        self.session = False

    def login(self, auth: Any = AuthMethod.SESSION) -> None:
        svc = self.service
        if auth == AuthMethod.SESSION and not svc.session_service:
            raise SessionCreationError("HTTP 404: Failed to create the session\nNot Found")
        if not self._ok:
            raise InvalidCredentialsError("HTTP 401 Unauthorized returned: Invalid credentials "
                                          "supplied")
        if auth == AuthMethod.SESSION:
            svc.sessions += 1
            svc.expired = False
            self.session = True

    def get(self, path: str, args: dict[str, str] | None = None, timeout: Any = None,
            max_retry: Any = None) -> FakeResponse:
        svc = self.service
        svc.requests.append((path, args))
        if svc.raise_on_get is not None:
            raise svc.raise_on_get
        if self.session and svc.expired:
            return FakeResponse(401, "{}")
        key = path.rstrip("/")
        if key in svc.status:
            return FakeResponse(svc.status[key], "{}")
        if key in svc.malformed:
            return FakeResponse(200, '{"Fans": [')
        doc = svc.tree.get(key)
        if doc is None:
            return FakeResponse(404, "{}")
        if args and "$expand" in args and "Members" in doc:
            doc = dict(doc, Members=[svc.tree.get(m["@odata.id"], m) for m in doc["Members"]])
        return FakeResponse(200, json.dumps(doc))

    def logout(self) -> None:
        if self.session:
            self.service.logouts += 1


def timeout_error() -> RetriesExhaustedError:
    """What the library raises when a request times out (the cause is requests' Timeout)."""
    import requests

    exc = RetriesExhaustedError()
    exc.__cause__ = requests.exceptions.ReadTimeout("read timed out")
    return exc
