"""A small client for Superset's REST API: log in, then find, create or update its objects by name."""

import json
from typing import Any

import httpx

# Columns that hold another object's id: Superset filters them as relations, not as values.
RELATIONS = {"database"}


class SupersetError(RuntimeError):
    """Superset answered with an error, or not at all."""


class SupersetClient:
    """Superset's API at `url` as `username`; every call has `timeout` seconds."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.url}/api/v1", timeout=timeout)
        self._username, self._password = username, password

    def __enter__(self) -> "SupersetClient":
        self.login()
        return self

    def __exit__(self, *exc_info) -> None:
        self._http.close()

    def login(self) -> None:
        """A JWT for the API and, for the calls that check it, a CSRF token bound to the session cookie."""
        body = {"username": self._username, "password": self._password, "provider": "db", "refresh": False}
        token = self._call("POST", "/security/login", json=body)["access_token"]
        self._http.headers["Authorization"] = f"Bearer {token}"
        self._http.headers["X-CSRFToken"] = self._call("GET", "/security/csrf_token/")["result"]
        self._http.headers["Referer"] = self.url

    def get(self, path: str, **params: Any) -> dict:
        return self._call("GET", path, params=params or None)

    def post(self, path: str, body: dict) -> dict:
        return self._call("POST", path, json=body)

    def put(self, path: str, body: dict) -> dict:
        return self._call("PUT", path, json=body)

    def find(self, resource: str, **equals: Any) -> dict | None:
        """The one `resource` (dataset, chart, …) whose columns equal `equals`, or None."""
        filters = [
            {"col": column, "opr": "rel_o_m" if column in RELATIONS else "eq", "value": value}
            for column, value in equals.items()
        ]
        query = rison({"filters": filters, "page_size": 2})
        found = self.get(f"/{resource}/", q=query)["result"]
        if len(found) > 1:
            raise SupersetError(f"Superset has {len(found)} {resource}s with {equals}; expected at most one")
        return found[0] if found else None

    def upsert(self, resource: str, key: dict, body: dict, create: tuple[str, ...] | None = None) -> int:
        """Create the `resource` identified by `key` if missing, then set it to `body`; returns its id.

        `create` names the fields of `body` that a create accepts (default: all of them); some,
        such as a dataset's cache timeout, can only be set by an update.
        """
        existing = self.find(resource, **key)
        if existing is None:
            fields = body if create is None else {name: body[name] for name in create if name in body}
            created = self.post(f"/{resource}/", {**key, **fields})["id"]
            if create is None:
                return created
            existing = {"id": created}
        self.put(f"/{resource}/{existing['id']}", body)
        return existing["id"]

    def _call(self, method: str, path: str, **kwargs: Any) -> dict:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SupersetError(f"Superset at {self.url} did not answer {method} {path}: {exc!r}") from exc
        if response.status_code >= 400:
            raise SupersetError(
                f"Superset answered {method} {path} with HTTP {response.status_code}: {_reason(response)}"
            )
        return response.json() if response.content else {}


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except json.JSONDecodeError:
        return response.text[:200]
    return json.dumps(body.get("message", body))[:500]


def rison(value: Any) -> str:
    """`value` in Rison, the URL-friendly JSON that Superset's list endpoints take as `q`."""
    if isinstance(value, bool):
        return "!t" if value else "!f"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return "'" + value.replace("!", "!!").replace("'", "!'") + "'"
    if isinstance(value, list | tuple):
        return "!(" + ",".join(rison(item) for item in value) + ")"
    if isinstance(value, dict):
        return "(" + ",".join(f"{key}:{rison(item)}" for key, item in value.items()) + ")"
    if value is None:
        return "!n"
    raise TypeError(f"cannot write {type(value).__name__} as Rison")
