"""prado-bench on a seq2seq parser: a tiny pQRNN-MAtt pair (encoder X.tflite, one-step decoder
X.decoder.tflite) trained on the demo data and exported (conftest's `tiny_matt`). Locally: the record's size
is both files', the encoder invoke is timed as before, and whole parses (`Predictor.predict`)
greedy and with the model's beam; on a device (the fake adb of test_bench_adb, and the ssh target
with its board standing in this machine): the encoder and one decoder step, each timed on its
own, and a note saying that no whole parse ran there."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from prado_tiny.bench import report
from prado_tiny.bench.adb import AdbTarget
from prado_tiny.bench.local import (bench_local, dataset_tokens, decoder_step_inputs,
                                    seq2seq_pair)
from prado_tiny.bench.model_stats import model_stats
from prado_tiny.bench.report import BenchError
from prado_tiny.bench.ssh import SshTarget
from prado_tiny.export.metadata import read_metadata
from test_bench_adb import fake  # noqa: F401  (the fake adb fixture)

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")


@pytest.fixture(scope="module")
def pair(tiny_matt):
    """-> dict(tflite, decoder, beam) of conftest's tiny exported pQRNN-MAtt (shared with
    test_pqrnn_matt_cli: one training for both)."""
    assert os.path.isfile(tiny_matt["decoder"])
    return dict(tflite=tiny_matt["tflite"], decoder=tiny_matt["decoder"],
                beam=int(read_metadata(tiny_matt["tflite"])["decoding"]["beam_width"]))


def test_local_cli_times_the_pair_and_whole_parses(pair, tmp_path):
    enc, dec = os.path.getsize(pair["tflite"]), os.path.getsize(pair["decoder"])
    assert pair["beam"] == 3  # TINY_MATT's --beam_width
    out = {k: str(tmp_path / f"r.{k}") for k in ("json", "md")}
    r = subprocess.run([sys.executable, "-m", "prado_tiny.bench_main", f"--models={pair['tflite']}",
                        "--target=local", "--runs=20", "--warmup=2", "--min_seconds=0",
                        "--examples=10", f"--output_json={out['json']}", f"--output_md={out['md']}"],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    (rec,) = json.loads(open(out["json"]).read())["records"]
    # The size is the deployable pair; each file's own figures are kept.
    assert rec["seq2seq"] is True
    assert rec["size_bytes"] == enc + dec
    assert rec["files"]["encoder"]["bytes"] == enc and rec["files"]["decoder"]["bytes"] == dec
    assert rec["files"]["decoder"]["path"] == pair["decoder"]
    enc_stats, dec_stats = model_stats(pair["tflite"]), model_stats(pair["decoder"])
    assert rec["params"] == enc_stats.params + dec_stats.params
    assert rec["macs"] == enc_stats.macs  # the timed invoke's, the encoder's
    # The encoder invoke is timed as for any model.
    assert rec["runs"] == 20 and rec["inputs"] == "demo dev: 10 utterances"
    assert 0 < rec["min_us"] <= rec["p50_us"] <= rec["p90_us"] <= rec["p99_us"]
    # Whole parses, greedy and with the model's beam, over the same utterances.
    parses = rec["parse_latency_us"]
    assert set(parses) == {"beam_1", "beam_3"}
    for width, t in parses.items():
        assert t["runs"] == 20 and t["utterances"] == 10, width
        assert 0 < t["min"] <= t["p50"] <= t["p90"] <= t["p99"], (width, t)
    assert parses["beam_3"]["p50"] >= 0
    # A parse runs the encoder once and the decoder at least once more: it costs more.
    assert parses["beam_1"]["p50"] > rec["p50_us"]
    assert "beam 3" in rec["note"]
    md = open(out["md"]).read()
    assert md in r.stdout
    row = next(ln for ln in md.splitlines() if ln.startswith("| parser"))
    assert row.startswith("| parser (pair) | local | " + f"{enc + dec:,} |")
    assert (f"seq2seq pair parser.tflite + parser.decoder.tflite: {enc:,} + {dec:,} = "
            f"{enc + dec:,} bytes") in md
    assert "whole parse on the host" in md
    for width in (1, 3):
        assert f"beam {width} p50 {parses[f'beam_{width}']['p50']:,.0f} / p90" in md


def test_a_lone_half_of_the_pair_is_refused(pair, tmp_path):
    with pytest.raises(BenchError, match="this is the decoder of a pqrnn_matt pair.*pass the "
                                         "encoder .tflite to --models"):
        bench_local(pair["decoder"], runs=1)
    lone = tmp_path / "parser.tflite"
    shutil.copy(pair["tflite"], lone)
    with pytest.raises(BenchError, match="not beside it"):
        seq2seq_pair(str(lone))
    assert seq2seq_pair(pair["tflite"]) == (pair["decoder"], 3)


def test_decoder_step_inputs_feed_the_first_step(pair):
    rows = decoder_step_inputs(pair["tflite"], pair["decoder"], [["wake", "me", "up"], ["hi"]])
    from ai_edge_litert.interpreter import Interpreter
    details = Interpreter(model_path=pair["decoder"]).get_input_details()
    assert [d["name"] for d, _ in rows] == [d["name"] for d in details]
    for d, x in rows:
        assert x.dtype == d["dtype"] and list(x.shape) == [2] + [int(n) for n in d["shape"]]
    by_name = {d["name"]: x for d, x in rows}
    token = next(x for n, x in by_name.items() if "token" in n)
    count = next(x for n, x in by_name.items() if "count" in n)
    assert (token == 1).all() and (count == 0).all()  # <bos>, nothing generated yet
    # The encoder's outputs differ between the two utterances.
    keys = next(x for n, x in by_name.items() if "keys_0" in n)
    assert not np.array_equal(keys[0], keys[1])


def test_adb_times_encoder_and_one_decoder_step(fake, pair):  # noqa: F811
    paths = fake()
    rec = AdbTarget().bench(pair["tflite"], paths["binary"], [["wake", "me", "up"], ["unused"]],
                            source="demo dev", runs=200)
    calls = [json.loads(line) for line in paths["log"].read_text().splitlines()]
    runs = [c[3] for c in calls if c[2:3] == ["shell"] and c[3].startswith("taskset")]
    assert len(runs) == 2
    assert "--graph=/data/local/tmp/prado_bench/parser.tflite " in runs[0]
    assert "--graph=/data/local/tmp/prado_bench/parser.decoder.tflite " in runs[1]
    # Every decoder input gets a value file of its exact size (benchmark_model reads raw bytes).
    rows = decoder_step_inputs(pair["tflite"], pair["decoder"], [["wake", "me", "up"]])
    names = [d["name"] for d, _ in rows]
    assert f"--input_layer={','.join(names)} " in runs[1]
    for i, (d, x) in enumerate(rows):
        pushed = paths["phone"] / f"parser.decoder.tflite.input{i}.bin"
        np.testing.assert_array_equal(np.fromfile(pushed, x.dtype).reshape(x[0].shape), x[0])
    assert rec.seq2seq and rec.size_bytes == (os.path.getsize(pair["tflite"])
                                              + os.path.getsize(pair["decoder"]))
    assert rec.mean_us == 390.1  # the fake's figures, for both files
    assert rec.decoder_invoke_us["mean"] == 390.1 and rec.decoder_invoke_us["p50"] == 388
    assert rec.decoder_invoke_us["inputs"] == "first decoder step of demo dev: 1 utterance"
    assert rec.parse_latency_us is None
    assert "only single invokes were timed on the device" in rec.note
    assert "benchmark_model cannot run there" in rec.note
    md = report.markdown_table([rec])
    assert "| parser (pair) | adb |" in md and "one decoder step on the device: p50 388 us" in md
    assert "time it with --target=local" in md


class LocalBoard(SshTarget):
    """The ssh target with this machine as the board: commands run in a shell, files are copied
    to `remote_dir` (no sshd here; test_bench_ssh covers ssh and scp themselves)."""

    def __init__(self, remote_dir):  # no ssh client needed: nothing is checked or reached
        self.host, self.port, self.key, self.common = "me@board", 22, None, []
        self.remote_python, self.remote_dir, self.timeout = sys.executable, remote_dir, 300

    def ssh(self, command, what):
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                              timeout=self.timeout)

    def copy(self, files):
        os.makedirs(self.remote_dir, exist_ok=True)
        for f in files:
            shutil.copy(f, self.remote_dir)


def test_ssh_times_encoder_and_one_decoder_step(pair, tmp_path):
    board = tmp_path / "board"
    tokens = dataset_tokens("demo", None, "dev", None, 5)
    rec = LocalBoard(str(board)).bench(pair["tflite"], tokens, source="demo dev", cpus=[],
                                       warmup=1, runs=10)
    assert sorted(os.listdir(board)) == sorted(["runner.py", "parser.tflite", "parser.inputs.npz",
                                                "parser.decoder.tflite",
                                                "parser.decoder.inputs.npz"])
    with np.load(board / "parser.decoder.inputs.npz") as z:
        assert len(z.files) == len(decoder_step_inputs(pair["tflite"], pair["decoder"], tokens))
    assert rec.target == "ssh" and rec.runs == 10 and rec.size_bytes == (
        os.path.getsize(pair["tflite"]) + os.path.getsize(pair["decoder"]))
    d = rec.decoder_invoke_us
    assert d["runs"] == 10 and 0 < d["min"] <= d["p50"] <= d["p90"] <= d["p99"]
    assert d["inputs"] == "first decoder step of demo dev: 5 utterances"
    assert rec.parse_latency_us is None and "runner.py (numpy and LiteRT only) cannot run" in rec.note
