"""The Dask engine gives the same bytes as the local one, survives a dead worker, scores through a
TLS-only scheduler, and fails fast (within 15 s, the address named) when the scheduler cannot be
reached, is no Dask scheduler or its address is malformed."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline import engine as engines
from pipeline import io
from pipeline.cli import features as features_cli
from pipeline.cli import simulate as simulate_cli
from pipeline.config import EngineSettings, TlsSettings
from pipeline.engine import EngineError, map_shards, release_freed_memory
from pipeline.simulate import build_world, shard_bounds
from tests.conftest import make_params

pytestmark = pytest.mark.timeout(300)
PARAMS = make_params({"simulate": {"n_borrowers": 3000, "shard_size": 1000, "truth_replicates": 2},
                      "engine": {"batch_borrowers": 300}})


def engine_settings(**fields) -> EngineSettings:
    """An engine with the params' batch size (300 borrowers: a shard of 1,000 in 4 batches)."""
    return EngineSettings(**{"batch_borrowers": PARAMS.engine.batch_borrowers,
                             "features_workers": PARAMS.engine.features_workers, **fields})


LOCAL = engine_settings(kind="local", workers=1, scheduler="", retries=2)


@pytest.fixture(scope="session")
def cluster():
    """Two worker processes on 127.0.0.1, shared by the tests of this module."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as c:
        yield engine_settings(kind="dask", workers=2, scheduler=c.scheduler_address, retries=2)


def test_dask_tasks_run_in_the_clients_directory(tmp_path, monkeypatch):
    """Known answer from outside: workers started in another directory had written simulate-batch's
    shards there, relative to their own directory, while the stage reported success; the stages
    name their folders relative to the repository."""
    from dask.distributed import LocalCluster

    elsewhere, repo = tmp_path / "elsewhere", tmp_path / "repo"
    elsewhere.mkdir()
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "x.txt").write_text("here")
    monkeypatch.chdir(elsewhere)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as c:
        monkeypatch.chdir(repo)
        engine = engine_settings(kind="dask", workers=1, scheduler=c.scheduler_address, retries=0)
        assert list(map_shards(os.path.getsize, ["data/x.txt"], engine, "relative")) == [4]
    with pytest.raises(FileNotFoundError, match="on a filesystem every node shares, at the same path"):
        engines.in_directory(str(tmp_path / "not on this node"), os.path.getsize, "data/x.txt")


def simulate_into(folder: Path, engine: EngineSettings, parent_works: bool = False) -> Path:
    world = build_world(PARAMS.simulate, PARAMS.label)
    shards = list(range(len(shard_bounds(PARAMS.simulate))))
    raw = folder / "raw"
    truth = {"ground_truth": folder / "truth", "counterfactual": folder / "counterfactual"}
    list(map_shards(simulate_cli.write_shard, shards, engine, "sim", PARAMS.simulate, world, truth, raw,
                    parent_works=parent_works))
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


def test_simulation_in_this_process_beside_a_worker_process_is_byte_identical(simulated, tmp_path):
    """As ``limitjump simulate`` runs on two local workers: this process simulates shards too."""
    two = engine_settings(kind="local", workers=2, scheduler="", retries=2)
    same_files(simulated[0], simulate_into(tmp_path, two, parent_works=True))


def features_into(folder: Path, engine: EngineSettings) -> Path:
    list(features_cli.write_shards([0, 1, 2], folder / "raw", folder / "features", 30, PARAMS.features,
                                   engine))
    return folder / "features"


@pytest.fixture(scope="module")
def local_features(simulated):
    return features_into(simulated[0], LOCAL)


def test_features_in_batches_of_borrowers_are_byte_identical_to_whole_shards(simulated, local_features,
                                                                             tmp_path):
    """A borrower's features read only their own rows: batches of 300 borrowers (4 a shard, the
    last one short) give the bytes one batch a shard gives."""
    shutil.copytree(simulated[0] / "raw", tmp_path / "raw")
    whole = LOCAL.model_copy(update={"batch_borrowers": 10**6})
    same_files(local_features, features_into(tmp_path, whole))
    assert len(io.borrower_ends(tmp_path / "raw" / "borrowers", 0, LOCAL.batch_borrowers)) == 4


def test_features_are_byte_identical_on_dask(simulated, cluster, local_features):
    same_files(local_features, features_into(simulated[1], cluster))


def test_features_on_two_threads_are_byte_identical_to_a_loop(simulated, local_features, tmp_path,
                                                              monkeypatch):
    """The features stage's local workers are threads sharing one process: no shared state
    between shards may leak from one to another."""
    ran_on, write = [], features_cli.write_shard
    monkeypatch.setattr(features_cli, "write_shard",
                        lambda *a: ran_on.append(threading.current_thread().name) or write(*a))
    shutil.copytree(simulated[0] / "raw", tmp_path / "raw")
    two = engine_settings(kind="local", workers=2, scheduler="", retries=2)
    same_files(local_features, features_into(tmp_path, two))
    assert len(ran_on) == 3 and threading.main_thread().name not in ran_on


def test_features_on_processes_are_byte_identical_to_a_loop(simulated, local_features, tmp_path,
                                                            monkeypatch):
    """``engine.features_workers: processes``: with two workers, one worker process builds and
    writes shards while this process builds and writes others, to the same bytes."""
    pools, sent = [], []

    class Pool(engines.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(kwargs["max_workers"])
            super().__init__(*args, **kwargs)

        def submit(self, fn, item, *args):
            sent.append(item)
            return super().submit(fn, item, *args)

    monkeypatch.setattr(engines, "ProcessPoolExecutor", Pool)
    shutil.copytree(simulated[0] / "raw", tmp_path / "raw")
    two = engine_settings(kind="local", workers=2, scheduler="", retries=2, features_workers="processes")
    rows = list(features_cli.write_shards([0, 1, 2], tmp_path / "raw", tmp_path / "features", 30,
                                          PARAMS.features, two))
    assert pools == [1] and rows == [1000, 1000, 1000]
    assert 1 <= len(sent) <= 2  # the worker process took some shards, this process the others
    same_files(local_features, tmp_path / "features")


def test_work_beside_a_pool_fails_as_the_work_does():
    """An error in an item, run here or in the pool, stops the run; otherwise results in order."""
    two = engine_settings(kind="local", workers=2, scheduler="", retries=2)
    with pytest.raises(ZeroDivisionError):
        list(map_shards(divmod, [1, 2, 3], two, "divide", 0, parent_works=True))
    assert list(map_shards(divmod, [7, 8, 9], two, "divide", 2, parent_works=True)) == [
        (3, 1), (4, 0), (4, 1)]


def kill_worker_once(index: int, marker: str, *args) -> int:
    """Kills its own worker process the first time it runs for shard 1."""
    if index == 1 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return features_cli.write_shard(index, *args)


def test_a_killed_worker_is_retried_and_the_output_is_complete(simulated, cluster, local_features,
                                                              tmp_path):
    local, _ = simulated
    marker = str(tmp_path / "killed-once")
    rows = list(map_shards(kill_worker_once, [0, 1, 2], cluster, "features", marker, local / "raw",
                           tmp_path / "features", 30, PARAMS.features, PARAMS.engine.batch_borrowers))
    assert os.path.exists(marker) and rows == [1000, 1000, 1000]
    same_files(local_features, tmp_path / "features")


def test_an_unreachable_scheduler_fails_fast():
    engine = engine_settings(kind="dask", workers=1, scheduler="tcp://127.0.0.1:9", retries=0)
    start = time.perf_counter()
    # with the reason (it had been empty: a timeout's message is)
    with pytest.raises(EngineError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9 .*\): "
                                          r"Connection refused$"):
        list(map_shards(len, ["a"], engine, "nothing"))
    assert time.perf_counter() - start < 15


def test_a_listener_that_is_not_a_scheduler_fails_within_15_s(silent_listener):
    engine = engine_settings(kind="dask", workers=1, scheduler=silent_listener, retries=0)
    start = time.perf_counter()
    with pytest.raises(EngineError, match=f"the Dask scheduler at {silent_listener} .* is not a Dask "
                                          "scheduler: it took the connection but did not answer"):
        list(map_shards(len, ["a"], engine, "nothing"))
    assert time.perf_counter() - start < 15


def test_a_dask_worker_is_not_taken_for_the_scheduler(cluster):
    from dask.distributed import Client

    with Client(cluster.scheduler, timeout="10s") as client:
        worker = next(iter(client.scheduler_info()["workers"]))
    engine = cluster.model_copy(update={"scheduler": worker})
    with pytest.raises(EngineError, match=f"{worker} .* is not a Dask scheduler .*Worker"):
        list(map_shards(len, ["a"], engine, "nothing"))


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:notaport", "tcp://", "udp://127.0.0.1:8786",
                                     "tcp://127.0.0.1:99999", "127.0.0.1"])
def test_a_malformed_address_fails_at_once_naming_it(address):
    engine = engine_settings(kind="dask", workers=1, scheduler=address, retries=0)
    start = time.perf_counter()
    expected = f"malformed address for the Dask scheduler at {re.escape(address)} "
    with pytest.raises(EngineError, match=expected):
        list(map_shards(len, ["a"], engine, "nothing"))
    assert time.perf_counter() - start < 2


def test_a_tls_scheduler_without_certificates_says_which_settings_to_set():
    engine = engine_settings(kind="dask", workers=1, scheduler="tls://127.0.0.1:8786", retries=0)
    with pytest.raises(EngineError, match="uses TLS: set engine.tls"):
        list(map_shards(len, ["a"], engine, "nothing"))
    missing = TlsSettings(ca_file="/nonexistent/ca.pem", cert_file="/nonexistent/c.pem",
                          key_file="/nonexistent/k.pem")
    with pytest.raises(EngineError, match="engine.tls.ca_file: /nonexistent/ca.pem: no such file"):
        list(map_shards(len, ["a"], engine.model_copy(update={"tls": missing}), "nothing"))


def self_signed(folder: Path) -> TlsSettings:
    """A certificate authority and one certificate it signs for 127.0.0.1, for server and client."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            builder = (builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
                       .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = {"ca_file": folder / "ca.pem", "cert_file": folder / "cert.pem", "key_file": folder / "key.pem"}
    pem = serialization.Encoding.PEM
    files["ca_file"].write_bytes(certificate("test CA", ca_key, "test CA", ca_key, True).public_bytes(pem))
    files["cert_file"].write_bytes(certificate("127.0.0.1", key, "test CA", ca_key, False).public_bytes(pem))
    files["key_file"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return TlsSettings(**{k: str(v) for k, v in files.items()})


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    """One worker process behind a scheduler that speaks only TLS, on 127.0.0.1."""
    from dask.distributed import LocalCluster
    from distributed.security import Security

    tls = self_signed(tmp_path_factory.mktemp("certificates"))
    security = Security(tls_ca_file=tls.ca_file, tls_scheduler_cert=tls.cert_file,
                        tls_scheduler_key=tls.key_file, tls_worker_cert=tls.cert_file,
                        tls_worker_key=tls.key_file, tls_client_cert=tls.cert_file,
                        tls_client_key=tls.key_file, require_encryption=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tls://",
                      security=security, dashboard_address=None) as c:
        assert c.scheduler_address.startswith("tls://127.0.0.1:")
        yield engine_settings(kind="dask", workers=1, scheduler=c.scheduler_address, retries=2, tls=tls)


@pytest.fixture(scope="module")
def scoring(simulated, local_features, tmp_path_factory):
    """A model trained on the simulated borrowers, and their scores on the local engine."""
    from pipeline.model import CalibratedLightGBM
    from tests.conftest import build_model_dir

    folder = tmp_path_factory.mktemp("scoring")
    truth = io.read_dataset(simulated[0] / "truth")
    model_dir = build_model_dir({"ground_truth": truth}, io.read_dataset(local_features), folder / "model")
    model = CalibratedLightGBM.from_dir(model_dir["path"])
    return {"model": model, "raw": simulated[0] / "raw", "local": score_on(LOCAL, model, simulated[0] / "raw",
                                                                           folder / "local.parquet")}


def score_on(engine: EngineSettings, model, raw: Path, output: Path) -> Path:
    from pipeline import batches

    p = PARAMS.model_copy(update={"engine": engine,
                                  "score": PARAMS.score.model_copy(update={"batch_borrowers": 700})})
    summary = batches.score_all(raw, model, "test", output, p, pd.Timestamp.today())
    assert summary["scored"] + summary["rejected"] == summary["borrowers_in"] == 3000
    return output


def test_scoring_is_byte_identical_on_dask(scoring, cluster, tmp_path):
    dask = score_on(cluster, scoring["model"], scoring["raw"], tmp_path / "dask.parquet")
    assert scoring["local"].read_bytes() == dask.read_bytes()


def test_a_features_file_scores_the_same_on_two_threads_as_in_a_loop(scoring, local_features, tmp_path):
    two = LOCAL.model_copy(update={"workers": 2})
    loop = score_on(LOCAL, scoring["model"], local_features, tmp_path / "loop.parquet")
    threads = score_on(two, scoring["model"], local_features, tmp_path / "threads.parquet")
    assert loop.read_bytes() == threads.read_bytes()


def test_raw_tables_score_the_same_on_two_processes_as_in_a_loop(scoring, tmp_path):
    processes = score_on(LOCAL.model_copy(update={"workers": 2}), scoring["model"], scoring["raw"],
                         tmp_path / "processes.parquet")
    assert scoring["local"].read_bytes() == processes.read_bytes()


@pytest.mark.parametrize(("workers", "threads"), [(1, False), (2, True)])
def test_work_in_this_process_uses_as_many_arrow_threads_as_workers(workers, threads):
    """``engine.workers`` is the number of cores a command uses, Arrow's threads included; the
    process's own setting comes back afterwards."""
    import pyarrow

    before = pyarrow.cpu_count()
    engine = LOCAL.model_copy(update={"workers": workers})
    seen = list(map_shards(lambda i: pyarrow.cpu_count(), range(3), engine, "t", threads=threads))
    assert seen == [min(workers, before)] * 3
    assert pyarrow.cpu_count() == before


def test_threads_run_the_work_in_order_on_worker_threads():
    two = LOCAL.model_copy(update={"workers": 2})
    done = list(map_shards(lambda i: (i, threading.current_thread().name), range(7), two, "t", threads=True))
    assert [i for i, _ in done] == list(range(7))
    assert all(name != threading.main_thread().name for _, name in done)


def test_scoring_through_a_tls_scheduler(scoring, tls_cluster, tmp_path):
    dask = score_on(tls_cluster, scoring["model"], scoring["raw"], tmp_path / "tls.parquet")
    assert scoring["local"].read_bytes() == dask.read_bytes()


def test_a_tls_scheduler_refuses_a_client_without_its_certificates(tls_cluster, tmp_path):
    stranger = self_signed(tmp_path)  # a certificate the cluster's authority never signed
    start = time.perf_counter()
    with pytest.raises(EngineError, match=f"cannot reach the Dask scheduler at {tls_cluster.scheduler}"):
        list(map_shards(len, ["a"], tls_cluster.model_copy(update={"tls": stranger}), "nothing"))
    assert time.perf_counter() - start < 15


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_trim"), reason="a C library without malloc_trim")
def test_releasing_freed_memory_shrinks_the_process():
    import psutil

    def resident_mb() -> float:
        return psutil.Process().memory_info().rss / 2**20

    before = resident_mb()
    blocks = [bytearray(b"x" * 65536) for _ in range(3000)]  # 190 MB in blocks malloc keeps
    last = blocks[-1]  # pins the top of the heap, so free() alone gives nothing back
    del blocks
    held = resident_mb()
    release_freed_memory()
    assert held - before > 150 and held - resident_mb() > 0.5 * (held - before)
    assert len(last) == 65536


def test_work_that_releases_memory_gives_the_same_results_on_every_engine():
    expect = [i * i for i in range(5)]
    for engine in (LOCAL, engine_settings(kind="local", workers=2, scheduler="", retries=2)):
        assert list(map_shards(pow, list(range(5)), engine, "squares", 2, release=True)) == expect


ARENA_CHILD = """
import sys, threading
import psutil
from pipeline.engine import one_malloc_arena

took = one_malloc_arena() if sys.argv[1] == "one" else True
freed, done = threading.Event(), threading.Event()

def first():  # allocates 100 MB, frees it (its top pinned: malloc keeps it) and stays alive
    blocks = [b"x" * 65536 for _ in range(1600)]
    last = blocks[-1]
    del blocks
    freed.set()
    done.wait()
    assert last

def second():  # then allocates 100 MB while the first thread lives
    blocks = [b"y" * 65536 for _ in range(1600)]
    print(took, psutil.Process().memory_info().rss / 2**20, len(blocks))

a = threading.Thread(target=first)
a.start()
freed.wait()
b = threading.Thread(target=second)
b.start()
b.join()
done.set()
a.join()
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallopt"), reason="a C library without arenas")
def test_with_one_malloc_arena_a_thread_reuses_what_another_freed():
    def resident_mb(arenas: str) -> float:
        out = subprocess.run([sys.executable, "-c", ARENA_CHILD, arenas], capture_output=True, text=True,
                             check=True).stdout.split()
        assert out[0] == "True" and out[2] == "1600"
        return float(out[1])

    assert resident_mb("default") - resident_mb("one") > 60  # each thread's arena kept its 100 MB
