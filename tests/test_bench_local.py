"""prado_tiny.bench.local: the exported tiny demo model timed on this machine, on real
utterances encoded by its own metadata, and a model without metadata on random inputs."""
import os

import numpy as np
import pytest

from prado_tiny.bench import local
from prado_tiny.bench.report import BenchError


@pytest.fixture(scope="module")
def without_metadata(tiny_export, tmp_path_factory):
    """The same model with its metadata table removed (stands for any foreign .tflite)."""
    from ai_edge_litert.tools import flatbuffer_utils as fu
    m = fu.read_model(tiny_export[1])
    m.metadata = []
    path = str(tmp_path_factory.mktemp("nometa") / "plain.tflite")
    fu.write_model(m, path)
    return path


def test_encode_utterances_matches_the_model_input(tiny_export, without_metadata):
    x = local.encode_utterances(tiny_export[1], [["hello"], ["set", "an", "alarm"]])
    assert x.dtype == np.int32 and x.shape[0] == 2 and x.shape[1] == 16  # max_seq_len of the fixture
    assert (x[0, 1:] == 0).all() and (x[1, :3] != 0).any()  # padding after the tokens
    assert local.encode_utterances(without_metadata, [["hello"]]) is None


def test_bench_local_real_utterances(tiny_export):
    tokens = local.dataset_tokens("demo", None, "dev", None, 30)
    assert len(tokens) == 30 and all(tokens)
    rec = local.bench_local(tiny_export[1], tokens, source="demo dev", warmup=3, runs=50)
    assert rec.target == "local" and rec.inputs == "demo dev: 30 utterances"
    assert rec.runs == 50 and rec.warmup == 3
    assert 0 < rec.min_us <= rec.p50_us <= rec.p90_us <= rec.p99_us
    assert rec.init_us > 0 and rec.first_us > 0 and rec.peak_memory_bytes > 0
    assert rec.cpus == local.default_cpus(1) and len(rec.cpus) == 1
    assert rec.size_bytes == os.path.getsize(tiny_export[1]) and rec.params > 0 and rec.macs > 0
    assert rec.name == "m"  # the file's stem (only `model.tflite` is named by its folder)
    assert "cores" in rec.device


def test_bench_local_random_inputs_and_no_pinning(without_metadata):
    rec = local.bench_local(without_metadata, [["hello"]], warmup=0, runs=5, cpus=[])
    assert rec.inputs == "random" and rec.runs == 5
    assert rec.cpus == sorted(os.sched_getaffinity(0))


def test_errors_name_the_problem(tmp_path, tiny_export):
    with pytest.raises(BenchError, match="model file not found"):
        local.bench_local(str(tmp_path / "none.tflite"))
    with pytest.raises(BenchError, match="cannot read benchmark utterances: unknown language.*xx"):
        local.dataset_tokens("demo", None, "dev", ["xx"], 5)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(BenchError, match="the runner failed"):
        local.bench_local(str(bad), runs=1)
