"""MLflow's basic-auth REST API, as ``limitjump server`` uses it: users, and their grants on an
experiment or a registered model. Errors come back as HTTP status and JSON, and are raised here
with what was asked named."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from pipeline.errors import InputError, UsageError

# what MLflow accepts as a grant on one experiment or model (DENY revokes; NO_PERMISSIONS is only a
# server's default, which MLflow 3.17 refuses as a grant)
GRANT_PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "DENY")
GRANT = "/api/3.0/mlflow/users/permissions/grant"
REVOKE = "/api/3.0/mlflow/users/permissions/revoke"


def basic_auth_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def credentials_from_env() -> tuple[str, str]:
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not user or not password:
        raise UsageError("set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (an admin's)")
    return user, password


def api(url: str, path: str, body: dict | None = None, auth: tuple[str, str] | None = None,
        method: str | None = None, query: dict | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON body) of one REST call; errors are returned, not raised."""
    target = url.rstrip("/") + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(target, data=data, method=method or ("POST" if data else "GET"),
                                     headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", basic_auth_header(*auth))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status_code, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status_code, raw = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:  # nothing answered: a stopped server, a typo
        reason = getattr(err, "reason", err)
        raise UsageError(f"no MLflow server answers at {url} ({reason}): is it running "
                         "(`limitjump server status`), and is the URL right?") from None
    try:
        payload = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        payload = {"text": raw.decode(errors="replace")}
    return status_code, payload if isinstance(payload, dict) else {"value": payload}


def _ok(status_code: int, payload: dict, what: str) -> dict:
    if status_code != 200:
        message = payload.get("message") or payload.get("text") or payload
        raise InputError(f"{what}: HTTP {status_code}: {message}")
    return payload


def create_user(url: str, admin: tuple[str, str], username: str, password: str) -> bool:
    """Create a user; False if it already exists with ``password``. One that exists with another
    password is an error, as creating it again changes nothing: an admin "resetting" a password
    that way had been told the user exists, exit 0, and the old password still worked."""
    code, payload = api(url, "/api/2.0/mlflow/users/create", {"username": username, "password": password},
                        admin)
    if code != 200 and "already exists" in str(payload.get("message", "")) + str(payload.get("text", "")):
        signed_in, _ = api(url, "/api/2.0/mlflow/users/get", auth=(username, password),
                           query={"username": username})
        if signed_in == 401:
            raise UsageError(f"user {username} already exists, with another password: add-user does not "
                             f"change it; `limitjump server set-password {username}` does")
        return False
    _ok(code, payload, f"create user {username}")
    return True


def set_password(url: str, admin: tuple[str, str], username: str, password: str) -> None:
    """Give a user a new password (as an admin); every server worker takes it within a minute."""
    _ok(*api(url, "/api/2.0/mlflow/users/update-password", {"username": username, "password": password},
             admin, method="PATCH"), f"set the password of user {username}")


def experiment_id(url: str, auth: tuple[str, str], name: str) -> str:
    code, payload = api(url, "/api/2.0/mlflow/experiments/get-by-name", auth=auth,
                        query={"experiment_name": name})
    return _ok(code, payload, f"experiment {name}")["experiment"]["experiment_id"]


def registered_model(url: str, auth: tuple[str, str], name: str) -> str:
    """``name``, if a registered model of that name exists: MLflow stores a grant on any name,
    so a typo ('limitjump-champoin') had been granted, exit 0, and would hold on a model
    registered later under it."""
    code, payload = api(url, "/api/2.0/mlflow/registered-models/get", auth=auth, query={"name": name})
    if code == 404:
        code, found = api(url, "/api/2.0/mlflow/registered-models/search", auth=auth,
                          query={"max_results": 100})
        names = [m["name"] for m in found.get("registered_models", [])] if code == 200 else []
        raise InputError(f"no registered model {name!r} at {url}" + (f" (it has {', '.join(names)})"
                                                                      if names else ""))
    _ok(code, payload, f"registered model {name}")
    return name


def grant(url: str, admin: tuple[str, str], username: str, permission: str,
          experiment: str | None = None, model: str | None = None) -> list[tuple[str, str]]:
    """Grant ``permission`` on an experiment and/or a registered model (by name; ``*`` for all) and
    return the (resource type, id) pairs granted."""
    if permission == "NO_PERMISSIONS":
        raise UsageError("MLflow takes no NO_PERMISSIONS grant on one experiment or model: "
                         "--permission DENY revokes a user's access there")
    if permission not in GRANT_PERMISSIONS:
        raise UsageError(f"permission must be one of {', '.join(GRANT_PERMISSIONS)}: {permission!r}")
    targets = []
    if experiment:
        targets.append(("experiment", "*" if experiment == "*" else experiment_id(url, admin, experiment)))
    if model:
        targets.append(("registered_model", "*" if model == "*" else registered_model(url, admin, model)))
    if not targets:
        raise UsageError("name an experiment and/or a registered model to grant on")
    for resource_type, resource_id in targets:
        body = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
        code, payload = api(url, GRANT, {**body, "permission": permission}, admin)
        if code == 400 and "already exists" in str(payload.get("message", "")):
            # a grant is replaced, not stacked: the creator of a resource already holds MANAGE on it
            _ok(*api(url, REVOKE, body, admin), f"revoke on {resource_type} {resource_id} from {username}")
            code, payload = api(url, GRANT, {**body, "permission": permission}, admin)
        _ok(code, payload, f"grant {permission} on {resource_type} {resource_id} to {username}")
    return targets
