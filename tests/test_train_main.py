"""prado-train end to end on the built-in demo dataset, with a tiny model (subprocesses)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

TINY = ["--dataset=demo", "--hidden_dim=16", "--bloom_size=64", "--num_hashes=8", "--window=1",
        "--max_seq_len=16", "--wordpiece_vocab_size=200", "--batch_size=32",
        "--max_steps_per_epoch=5", "--progress=false", "--max_train_examples=400"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")


def train_cmd(model_dir, *extra):
    return [sys.executable, "-m", "prado_tiny.train_main", f"--model_dir={model_dir}", *TINY, *extra]


def train(model_dir, *extra, timeout=300):
    return subprocess.run(train_cmd(model_dir, *extra), capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def done_line(stdout):
    lines = [x for x in stdout.splitlines() if x.startswith("prado-train: done ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len("prado-train: done "):])


def history(model_dir):
    with open(os.path.join(model_dir, "history.json"), encoding="utf-8") as f:
        return json.load(f)


def optimizer_steps(model_dir):
    """The optimizer's iteration count in the latest checkpoint."""
    import tensorflow as tf
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    assert path, model_dir
    names = [n for n, _ in tf.train.list_variables(path) if n.split("/")[:2] in (["optimizer", "iter"], ["optimizer", "_iterations"])]
    assert len(names) == 1, names
    return int(tf.train.load_variable(path, names[0]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("train") / "model")
    r = train(d, "--epochs=2")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    return d, r


def test_two_epochs_write_the_model_folder(trained):
    d, r = trained
    for name in ("model.json", "label_vocab.json", "history.json"):
        assert os.path.isfile(os.path.join(d, name)), name
    for name in ("text_encoder", "checkpoints", "best", "logs"):
        assert os.path.isdir(os.path.join(d, name)), name
    assert os.listdir(os.path.join(d, "text_encoder"))
    assert os.path.exists(os.path.join(d, "best", "ckpt.index"))
    import tensorflow as tf
    assert tf.train.latest_checkpoint(os.path.join(d, "checkpoints"))
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(d, "logs")))
    with open(os.path.join(d, "model.json"), encoding="utf-8") as f:
        spec = json.load(f)
    assert spec["config"]["hidden_dim"] == 16 and spec["config"]["num_intents"] > 1

    h = history(d)
    assert [e["epoch"] for e in h["epochs"]] == [1, 2]
    for e in h["epochs"]:
        for k in ("dev_score", "dev_exact_match", "dev_intent_accuracy", "dev_slot_f1"):
            assert isinstance(e[k], float), (k, e)
        assert e["steps"] == 5
    assert h["best_epoch"]["epoch"] in (1, 2)

    summary = done_line(r.stdout)
    assert summary["model_dir"] == d
    assert summary["best_epoch"] == h["best_epoch"]["epoch"]
    assert 0.0 <= summary["dev_intent_accuracy"] <= 1.0
    assert "1 replica(s)" in r.stdout
    assert optimizer_steps(d) == 10


def test_rerun_of_a_finished_run_does_not_train(trained):
    d, _ = trained
    before = history(d)
    t0 = time.time()
    r = train(d, "--epochs=2")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "already finished (2 epochs); nothing to do" in r.stdout, r.stdout
    assert "resuming from" not in r.stdout
    assert "epoch 1:" not in r.stdout and "epoch 2:" not in r.stdout, r.stdout
    assert history(d) == before
    assert optimizer_steps(d) == 10
    done_line(r.stdout)
    assert time.time() - t0 < 120
    # A changed --epochs does not change a started run, and says so instead of passing silently.
    r = train(d, "--epochs=5")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "this run ends after epoch 2" in r.stdout and "--epochs=5 does not change" in r.stdout
    assert history(d) == before and optimizer_steps(d) == 10


def test_changed_model_flag_fails_naming_the_difference(trained):
    d, _ = trained
    r = train(d, "--epochs=2", "--hidden_dim=32")
    assert r.returncode != 0
    assert "other settings" in r.stderr
    assert "hidden_dim: 16 -> 32" in r.stderr, r.stderr[-2000:]
    assert "num_intents" not in r.stderr.splitlines()[-1]  # derived keys are not differences


def test_changed_lowercase_flag_fails_clearly(trained):
    d, _ = trained
    r = train(d, "--epochs=2", "--nolowercase")
    assert r.returncode != 0
    assert "--lowercase=True" in r.stderr and "same flag" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_resume_after_kill_9(tmp_path):
    flags = ["--max_steps_per_epoch=40", "--batch_size=8", "--epochs=3", "--dev_split="]
    killed, ref = str(tmp_path / "killed"), str(tmp_path / "ref")
    # The uninterrupted reference runs alongside the run that gets killed.
    ref_proc = subprocess.Popen(train_cmd(ref, *flags), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=ENV)
    proc = subprocess.Popen(train_cmd(killed, "--checkpoint_secs=0.5", *flags),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    ckpt_dir = os.path.join(killed, "checkpoints")
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            # The manager's `checkpoint` file names a checkpoint once it is complete.
            if os.path.exists(os.path.join(ckpt_dir, "checkpoint")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before a checkpoint was seen"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = (len(history(killed)["epochs"])
                   if os.path.exists(os.path.join(killed, "history.json")) else 0)
    assert done_before < 3

    # Resumed with another --epochs: the run keeps its 3 epochs and its learning-rate schedule
    # (the weights below match the uninterrupted run's) and says so.
    r = train(killed, "--checkpoint_secs=0.5", *flags, "--epochs=5")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "resuming from" in r.stdout, r.stdout
    assert "this run ends after epoch 3" in r.stdout and "--epochs=5 does not change" in r.stdout
    print(next(x for x in r.stdout.splitlines() if "resuming from" in x))
    ref_out, _ = ref_proc.communicate(timeout=300)
    assert ref_proc.returncode == 0, ref_out
    done_line(r.stdout)

    h, h_ref = history(killed), history(ref)
    assert [e["epoch"] for e in h["epochs"]] == [1, 2, 3]
    assert [e["epoch"] for e in h_ref["epochs"]] == [1, 2, 3]
    # Nothing skipped or repeated: the same optimizer step count as the uninterrupted run.
    assert optimizer_steps(ref) == sum(e["steps"] for e in h_ref["epochs"]) == 120
    assert optimizer_steps(killed) == optimizer_steps(ref)

    # Same seed, same example order, same steps: the weights match (up to float round-off).
    from prado_tiny.models import model_dir as md
    a = md.load(killed, weights="latest")[0]
    b = md.load(ref, weights="latest")[0]
    # Same architecture, same variable order (Keras renames the second model's layers).
    assert len(a.variables) == len(b.variables) > 0
    worst = 0.0
    for va, vb in zip(a.variables, b.variables):
        assert va.shape == vb.shape, (va.name, vb.name)
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5, atol=1e-6, err_msg=va.name)
        worst = max(worst, float(np.max(np.abs(va.numpy() - vb.numpy()), initial=0.0)))
    print(f"largest weight difference resumed vs uninterrupted: {worst:g}")


def test_mirrored_strategy_two_cpu_replicas(tmp_path):
    r = train(tmp_path / "m", "--epochs=1", "--strategy=mirrored", "--cpu_devices=2")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "2 replica(s)" in r.stdout, r.stdout
    assert [e["epoch"] for e in history(tmp_path / "m")["epochs"]] == [1]
    done_line(r.stdout)


def test_multi_label_intents_are_atomic(tmp_path):
    d = tmp_path / "m"
    r = train(d, "--epochs=1", "--intent_mode=multi_label")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    with open(d / "label_vocab.json", encoding="utf-8") as f:
        vocab = json.load(f)
    intents = vocab["intents"]
    assert len(intents) > 1
    assert not [x for x in intents if "#" in x], intents
    # One class per atomic intent of the training examples (the demo data has no `a#b` labels).
    from prado_tiny.data import demo
    train_intents = {p for e in list(demo.read(split="train"))[:400] for p in e.intent.split("#")}
    assert set(intents) - {"<unk>"} == train_intents
    done_line(r.stdout)


def test_missing_data_dir_fails_clearly(tmp_path):
    r = subprocess.run([sys.executable, "-m", "prado_tiny.train_main", f"--model_dir={tmp_path / 'm'}",
                        "--dataset=mtop", "--data_dir=/nonexistent"],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode != 0
    assert "/nonexistent: no such folder" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_diverging_run_stops_without_overwriting_good_weights(tmp_path):
    """A NaN loss stops the run (exit 1, a message, no traceback) before any save: an epoch of NaN
    weights once became the 'best' checkpoint of a QAT run."""
    d = tmp_path / "m"
    r = train(d, "--epochs=2", "--learning_rate=1e38", "--warmup_steps=0", "--checkpoint_secs=0")
    assert r.returncode == 1, r.stdout + r.stderr[-3000:]
    assert "the training loss is" in r.stderr and "stopped without saving" in r.stderr, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert not os.path.exists(d / "best" / "ckpt.index")  # no epoch finished: no best weights
    assert not (d / "history.json").exists() or not history(d)["epochs"]
