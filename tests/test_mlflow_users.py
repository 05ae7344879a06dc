"""MLflow's basic-auth REST API (``pipeline.mlflow_users``) without a server: what a grant sends, and
what a server that does not answer says. With a server, in tests/test_team.py."""

from __future__ import annotations

import pytest

from pipeline import mlflow_users
from pipeline.errors import UsageError
from tests.conftest import free_port

NAME = "limitjump"


def test_grants_take_deny_and_refuse_no_permissions_naming_deny(monkeypatch):
    sent = []

    def api(url, path, body=None, auth=None, **kw):
        sent.append(body)
        return 200, {}
    monkeypatch.setattr(mlflow_users, "api", api)
    granted = mlflow_users.grant("http://x", ("admin", "pw"), "alice", "DENY", model=NAME)
    assert granted == [("registered_model", NAME)] and sent[0]["permission"] == "DENY"
    with pytest.raises(UsageError, match="DENY"):
        mlflow_users.grant("http://x", ("admin", "pw"), "alice", "NO_PERMISSIONS", model=NAME)


def test_a_server_that_does_not_answer_is_one_line_naming_it_not_a_traceback():
    """add-user and grant against a stopped server raised urllib's URLError."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(UsageError, match=f"no MLflow server answers at {url} .*server status"):
        mlflow_users.api(url, "/health")
    with pytest.raises(UsageError, match="no MLflow server answers"):
        mlflow_users.grant(url, ("admin", "pw"), "alice", "READ", model=NAME)
