"""MLflow's basic-auth REST API (``pipeline.mlflow_users``) without a server: what a grant sends, and
what a server that does not answer says. With a server, in tests/test_team.py."""

from __future__ import annotations

import pytest

from pipeline import mlflow_users
from pipeline.errors import InputError, UsageError
from tests.conftest import free_port

NAME = "limitjump"


def test_grants_take_deny_and_refuse_no_permissions_naming_deny(monkeypatch):
    sent = []

    def api(url, path, body=None, auth=None, **kw):
        sent.append(body)
        return 200, {}
    monkeypatch.setattr(mlflow_users, "api", api)
    granted = mlflow_users.grant("http://x", ("admin", "pw"), "alice", "DENY", model=NAME)
    assert granted == [("registered_model", NAME)] and [b for b in sent if b][0]["permission"] == "DENY"
    with pytest.raises(UsageError, match="DENY"):
        mlflow_users.grant("http://x", ("admin", "pw"), "alice", "NO_PERMISSIONS", model=NAME)


def test_a_server_that_does_not_answer_is_one_line_naming_it_not_a_traceback():
    """add-user and grant against a stopped server raised urllib's URLError."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(UsageError, match=f"no MLflow server answers at {url} .*server status"):
        mlflow_users.api(url, "/health")
    with pytest.raises(UsageError, match="no MLflow server answers"):
        mlflow_users.grant(url, ("admin", "pw"), "alice", "READ", model=NAME)


def test_a_grant_on_a_model_that_does_not_exist_is_refused_and_nothing_is_granted(monkeypatch):
    """Known answer from outside: MLflow stored a grant of EDIT on 'nosuch', exit 0, after the
    experiment's grant had gone through; a model registered later under the name would be held."""
    granted = []

    def api(url, path, body=None, auth=None, method=None, query=None):
        if path.endswith("experiments/get-by-name"):
            return 200, {"experiment": {"experiment_id": "1"}}
        if path.endswith("registered-models/get"):
            return (200, {}) if query["name"] == NAME else (404, {"message": "not found"})
        if path.endswith("registered-models/search"):
            return 200, {"registered_models": [{"name": NAME}, {"name": f"{NAME}-decision"}]}
        granted.append(body)
        return 200, {}
    monkeypatch.setattr(mlflow_users, "api", api)
    with pytest.raises(InputError, match=r"no registered model 'nosuch' at http://x \(it has limitjump, "):
        mlflow_users.grant("http://x", ("admin", "pw"), "alice", "EDIT", experiment=NAME, model="nosuch")
    assert granted == []
    assert mlflow_users.grant("http://x", ("admin", "pw"), "alice", "EDIT", experiment=NAME, model=NAME) == [
        ("experiment", "1"), ("registered_model", NAME)]


@pytest.mark.parametrize("signed_in, outcome", [(200, False), (403, False), (401, "set-password bob")])
def test_adding_a_user_again_with_another_password_says_how_to_change_it(monkeypatch, signed_in, outcome):
    """Known answer from outside: add-user of an existing user with a new password said it existed,
    exit 0, and the old password still worked."""
    def api(url, path, body=None, auth=None, method=None, query=None):
        if path.endswith("users/create"):
            return 400, {"message": "User 'bob' already exists."}
        return signed_in, {}
    monkeypatch.setattr(mlflow_users, "api", api)
    if outcome is False:
        assert mlflow_users.create_user("http://x", ("admin", "pw"), "bob", "pw2") is False
    else:
        with pytest.raises(UsageError, match=outcome):
            mlflow_users.create_user("http://x", ("admin", "pw"), "bob", "pw2")
