"""The command line: ``limitjump --help`` lists every command without importing any (it took
4 s when it imported them all), with the summaries the commands' own help gives."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import typer

from pipeline import cli
from tests.conftest import ROOT

HELP_IMPORTS = """
import sys
sys.argv = ["limitjump", "--help"]
from pipeline.cli import main
try:
    main()
except SystemExit as done:
    assert done.code == 0, done.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("lightgbm", "mlflow", "sklearn", "matplotlib",
                                                             "pandera") or m.startswith("pipeline.cli."))
print("imported:", *heavy)
"""


def test_the_command_list_imports_no_command_and_names_them_all():
    done = subprocess.run([sys.executable, "-c", HELP_IMPORTS], cwd=ROOT, capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "imported:", done.stdout.splitlines()[-1]
    for name in cli.COMMANDS:
        assert f" {name} " in done.stdout, name


def test_each_summary_read_from_source_is_the_commands_own_help():
    for module in set(cli.COMMANDS.values()):
        importlib.import_module(f"pipeline.cli.{module}")
    commands = typer.main.get_command(cli.app).commands
    for name, module in cli.COMMANDS.items():
        own = commands[name].help or ""
        first = " ".join(own.split("\n\n")[0].split())
        source = (ROOT / "pipeline" / "cli" / f"{module}.py").read_text()
        assert cli.summary(source, name) == first, name


def test_an_unknown_command_is_a_usage_error():
    done = subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", "no-such-command"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "No such command" in done.stderr


def test_the_score_command_imports_no_mlflow_scikit_learn_matplotlib_or_optimisers():
    """MLflow is imported only to fetch a registered model; scoring a local folder never needs it,
    nor SciPy's optimisers (the cause model's temperature is fitted in training)."""
    code = ("import sys, pipeline.cli.score\n"
            "print(*sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'sklearn', 'matplotlib'}),"
            " *sorted({'scipy.optimize'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_no_command_imports_mlflow_until_it_logs_or_fetches():
    """A command's --help, and a stage's work before it logs, need no MLflow (1-2 s of imports):
    ``pipeline.tracking`` imports it in the functions that call it."""
    modules = ", ".join(f"pipeline.cli.{m}" for m in sorted(set(cli.COMMANDS.values())))
    code = f"import sys, {modules}\nprint(*sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_the_lightgbm_and_workers_stages_import_no_optbinning_matplotlib_or_pandera():
    """optbinning (2-4 s) is for the scorecard's fit alone, matplotlib for the stages that draw,
    pandera (0.15 s, 6 MB) for frames not already in the contract's dtypes."""
    code = ("import sys, pipeline.cli.tune, pipeline.cli.train, pipeline.cli.stream, pipeline.cli.features\n"
            "print(*sorted({m.split('.')[0] for m in sys.modules}\n"
            "              & {'optbinning', 'matplotlib', 'pandera'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_a_command_sends_mlflow_no_telemetry_outside_ci():
    """MLflow stays quiet by itself only when it sees pytest or a CI: this child sees neither."""
    code = ("import pipeline.cli\nfrom mlflow.telemetry.utils import is_telemetry_disabled\n"
            "print(is_telemetry_disabled())")
    from mlflow.telemetry.utils import _is_ci_env_or_testing

    ci = set().union(*(c for c in _is_ci_env_or_testing.__code__.co_consts if isinstance(c, frozenset)))
    assert "CI" in ci and "PYTEST_CURRENT_TEST" in ci  # the variables MLflow takes for a CI or a test
    quiet = {k: v for k, v in os.environ.items()
             if k not in ci | {"MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"}}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env=quiet)
    assert done.stdout.strip() == "True"
    control = subprocess.run([sys.executable, "-c", code.replace("import pipeline.cli\n", "")], cwd=ROOT,
                             capture_output=True, text=True, check=True, env=quiet)
    assert control.stdout.strip() == "False"  # the test can fail: without our setting MLflow would send


def test_outside_a_repository_a_command_names_the_params_option(tmp_path):
    """Scoring from a scratch folder needs the team's params: the error says how to give them."""
    done = subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", "score",
                           "--input", "in.csv", "--output", "out.csv", "--model", "models/lightgbm"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr
    assert "not inside a limitjump repository" in done.stderr and "--params" in done.stderr
    assert not list(tmp_path.iterdir())


def test_a_missing_file_is_named_with_what_is_wrong():
    """Arrow raises FileNotFoundError with the path alone; the operating system's says why."""
    arrow = FileNotFoundError("/data/raw/borrowers")
    assert cli.error_text(arrow) == "/data/raw/borrowers: no such file or folder"
    try:
        open(ROOT / "no-such-file")
    except FileNotFoundError as err:
        assert cli.error_text(err) == f"[Errno 2] No such file or directory: '{ROOT / 'no-such-file'}'"


def test_a_model_that_cannot_be_used_is_a_usage_error(tmp_path):
    """A model the registry lacks, a URI naming another model or a folder that holds no scoring model
    is an option that cannot run as given: exit 2, like a missing input path, not 1 (bad data);
    nothing is written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    rows = ROOT / "tests" / "data" / "team_example" / "score.csv"
    for model, message in (("models:/limitjump/999", f"no MLflow store at {tmp_path / 'm.db'}"),
                           ("models:/limitjump/999", "no version '999' in the registry"),
                           ("models:/other@champion", "expected models:/limitjump@<alias>"),
                           (str(ROOT / "tests" / "data"), "not a scoring model (no model.txt"),
                           ("models/lightgbn", "models/lightgbn: no such model folder")):
        if model == "models/lightgbn":  # a mistyped folder: no store is opened, so none is made
            env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'typo.db'}"
        done = subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", "score",
                               "--input", str(rows), "--output", str(tmp_path / "out.csv"), "--model", model],
                              cwd=ROOT, capture_output=True, text=True, env=env)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        (tmp_path / "m.db").touch()  # an empty SQLite file, which MLflow makes a store of
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "typo.db").exists()  # it had made an empty one


def test_a_relative_params_path_is_the_users_from_where_they_are(tmp_path, monkeypatch):
    """A stage runs at the project directory; a relative --params given in a subdirectory was
    read from the project directory (another file, or none)."""
    monkeypatch.chdir(tmp_path)
    argv = ["limitjump", "check-params", "--params", "mine.yaml", "--params=other/p.yaml", "--help"]
    assert cli._params_from_here(argv) == [
        "limitjump", "check-params", "--params", str(tmp_path / "mine.yaml"),
        f"--params={tmp_path / 'other' / 'p.yaml'}", "--help"]
    assert cli._params_from_here(["limitjump", "split"]) == ["limitjump", "split"]
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())  # valid
    (project / "sub" / "params.yaml").write_text("split: {train: 2}\n")  # the one given
    done = subprocess.run([sys.executable, "-c", CHECK_PARAMS], cwd=project / "sub", capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and f"{project / 'sub' / 'params.yaml'}: invalid params" in done.stderr, done


CHECK_PARAMS = """
import sys
sys.argv = ["limitjump", "check-params", "--params", "params.yaml"]
from pipeline.cli import main
main()
"""


def test_score_asks_for_the_registered_models_champion_and_promote_refuses_an_empty_version(tmp_path,
                                                                                           monkeypatch):
    """score's default model named `limitjump` whatever mlflow.registered_model said; promote took
    `--version ''` (an unset $VERSION in a script) for no option and promoted the latest version."""
    import yaml
    from typer.testing import CliRunner

    import pipeline.cli.promote  # noqa: F401 (registers the command)
    import pipeline.cli.score as scoring
    from pipeline.errors import UsageError
    from tests.conftest import merge, raw_params

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(merge(raw_params(), {"mlflow": {"registered_model": "limitjump_v2"}}),
                                     sort_keys=False))
    asked = []

    def loaded(uri, settings):
        asked.append(uri)
        raise UsageError("enough")
    monkeypatch.setattr(scoring, "load_model", loaded)
    (tmp_path / "in.csv").write_text("borrower_id\n1\n")
    CliRunner().invoke(cli.app, ["score", "--input", str(tmp_path / "in.csv"), "--output",
                                 str(tmp_path / "out.csv"), "--params", str(params)])
    assert asked == ["models:/limitjump_v2@champion"]
    refused = CliRunner().invoke(cli.app, ["promote", "--version", "", "--params", str(params)])
    assert isinstance(refused.exception, UsageError) and "--version is empty" in str(refused.exception)


def test_a_team_servers_refusal_is_one_line_naming_the_request_and_the_user(monkeypatch):
    from mlflow.exceptions import MlflowException

    from pipeline.cli import permission_denied

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    refused = MlflowException("API request to endpoint /api/2.0/mlflow/registered-models/alias failed "
                              "with error code 403 != 200. Response body: 'Permission denied'")
    said = permission_denied(refused)
    assert said.startswith("the tracking server refused /api/2.0/mlflow/registered-models/alias: alice "
                           "lacks the permission") and "\n" not in said
    assert permission_denied(MlflowException("RESOURCE_DOES_NOT_EXIST: no run")) is None
    assert permission_denied(ValueError("403")) is None


def test_a_models_fingerprint_is_its_files_and_what_produced_them_not_the_params_as_written(tmp_path):
    """Settings that resolve alike (``calibration: platt`` where ``auto`` chose Platt) make the
    same files: one fingerprint, so one run and one registry version; other files, other data or
    other figures, another."""
    from pipeline.cli.train import _fingerprint

    (tmp_path / "model.txt").write_text("tree 1")
    produced = {"model": "lightgbm", "features": ["a"], "data_digests": {"train": "d1"},
                "metrics": {"test_auc": 0.8}}
    auto = _fingerprint(tmp_path, {**produced, "params": {"calibration": "auto"}})
    assert auto == _fingerprint(tmp_path, {**produced, "params": {"calibration": "platt"}})
    assert auto != _fingerprint(tmp_path, {**produced, "data_digests": {"train": "d2"}})
    assert auto != _fingerprint(tmp_path, {**produced, "metrics": {"test_auc": 0.81}})
    (tmp_path / "model.txt").write_text("tree 2")
    assert auto != _fingerprint(tmp_path, produced)


def test_promoting_the_champion_again_says_when_it_fails_todays_gates():
    """An outside check: with the gates raised above the champion, `promote` said only that it
    was already @champion, though the log recorded the gates it fails."""
    from pipeline.cli.promote import _message

    entry = {"version": 1, "previous_champion": 1, "decision": "already_champion", "figures": {}}
    assert _message({**entry, "failed_gates": []}) == "version 1 is already @champion"
    said = _message({**entry, "failed_gates": ["min_oot_auc", "max_calibration_error"]})
    assert said.startswith("version 1 is already @champion, though it fails today's gates: "
                           "min_oot_auc, max_calibration_error")
