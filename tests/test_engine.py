"""The Dask engine gives the same bytes as the local one, survives a dead worker, and fails fast
when the scheduler cannot be reached."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline import io
from pipeline.cli import features as features_cli
from pipeline.cli import simulate as simulate_cli
from pipeline.config import EngineSettings
from pipeline.engine import EngineError, map_shards
from pipeline.simulate import build_world, shard_bounds
from tests.conftest import make_params

pytestmark = pytest.mark.timeout(300)
PARAMS = make_params({"simulate": {"n_borrowers": 3000, "shard_size": 1000, "truth_replicates": 2}})
LOCAL = EngineSettings(kind="local", workers=1, scheduler="", retries=2)


@pytest.fixture(scope="session")
def cluster():
    """Two worker processes on 127.0.0.1, shared by the tests of this module."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as c:
        yield EngineSettings(kind="dask", workers=2, scheduler=c.scheduler_address, retries=2)


def simulate_into(folder: Path, engine: EngineSettings) -> Path:
    world = build_world(PARAMS.simulate, PARAMS.label)
    shards = list(range(len(shard_bounds(PARAMS.simulate))))
    raw, truth = folder / "raw", folder / "truth"
    list(map_shards(simulate_cli.write_shard, shards, engine, "sim", PARAMS.simulate, world, raw, truth))
    io.write_parquet(world.outages.windows, raw / "maintenance_windows" / io.part_name(0))
    return folder


def same_files(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*.parquet"))
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, cluster):
    local = simulate_into(tmp_path_factory.mktemp("local"), LOCAL)
    dask = simulate_into(tmp_path_factory.mktemp("dask"), cluster)
    return local, dask


def test_simulation_is_byte_identical_on_dask(simulated):
    same_files(*simulated)


def features_into(folder: Path, engine: EngineSettings) -> Path:
    list(map_shards(features_cli.write_shard, [0, 1, 2], engine, "features", folder / "raw",
                    folder / "features", 30, PARAMS.features))
    return folder / "features"


@pytest.fixture(scope="module")
def local_features(simulated):
    return features_into(simulated[0], LOCAL)


def test_features_are_byte_identical_on_dask(simulated, cluster, local_features):
    same_files(local_features, features_into(simulated[1], cluster))


def kill_worker_once(index: int, marker: str, raw: Path, out: Path, observation_days: int, settings) -> int:
    """Kills its own worker process the first time it runs for shard 1."""
    if index == 1 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return features_cli.write_shard(index, raw, out, observation_days, settings)


def test_a_killed_worker_is_retried_and_the_output_is_complete(simulated, cluster, local_features,
                                                              tmp_path):
    local, _ = simulated
    marker = str(tmp_path / "killed-once")
    rows = list(map_shards(kill_worker_once, [0, 1, 2], cluster, "features", marker, local / "raw",
                           tmp_path / "features", 30, PARAMS.features))
    assert os.path.exists(marker) and rows == [1000, 1000, 1000]
    same_files(local_features, tmp_path / "features")


def test_an_unreachable_scheduler_fails_fast():
    engine = EngineSettings(kind="dask", workers=1, scheduler="tcp://127.0.0.1:9", retries=0)
    start = time.perf_counter()
    with pytest.raises(EngineError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        list(map_shards(len, ["a"], engine, "nothing"))
    assert time.perf_counter() - start < 30


def test_scoring_is_byte_identical_on_dask(simulated, cluster, local_features, tmp_path):
    from pipeline.cli import score as score_cli
    from pipeline.model import CalibratedLightGBM
    from tests.conftest import build_model_dir

    local = simulated[0]
    truth = io.read_dataset(local / "truth")
    model_dir = build_model_dir({"ground_truth": truth}, io.read_dataset(local_features), tmp_path / "model")
    model = CalibratedLightGBM.from_dir(model_dir["path"])
    outputs = {}
    for name, engine in (("local", LOCAL), ("dask", cluster)):
        p = PARAMS.model_copy(update={"engine": engine,
                                      "score": PARAMS.score.model_copy(update={"batch_borrowers": 700})})
        source = score_cli.open_source(local / "raw", p, model.features, pd.Timestamp.today())
        outputs[name] = tmp_path / f"{name}.parquet"
        summary = score_cli.run(source, model, "test", outputs[name], p)
        assert summary["scored"] + summary["rejected"] == summary["borrowers_in"] == 3000
    assert outputs["local"].read_bytes() == outputs["dask"].read_bytes()
