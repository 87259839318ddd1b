"""Shared test set-up: Keras 2 for tfmot, and the real datasets next to the repository."""
import os
import pathlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
# The project's datasets live beside the repository (../shared/datasets); PRADO_DATASETS overrides.
DATASETS = pathlib.Path(os.environ.get("PRADO_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> pathlib.Path:
    """The real datasets; a test that needs them fails loudly when they are missing."""
    if not (DATASETS / "README.md").exists():
        pytest.fail(f"real datasets not found at {DATASETS} (set PRADO_DATASETS to their folder)")
    return DATASETS


# A tiny trained model folder and its int8 export, shared by test_export_main and test_eval_main
# (training and export take about half a minute; doing them once keeps the suite fast).
TINY_TRAIN_FLAGS = ["--dataset=demo", "--languages=en,th", "--hidden_dim=16", "--bloom_size=64",
                    "--num_hashes=8", "--window=1", "--max_seq_len=16", "--wordpiece_vocab_size=200",
                    "--batch_size=32", "--max_steps_per_epoch=5", "--progress=false", "--epochs=2",
                    "--learning_rate=0.01", "--warmup_steps=2"]


def run_module(module, *args, ok=True, timeout=900):
    """Runs `python -m module args` as a user would; asserts its exit status (0 when `ok`) and
    returns stdout + stderr."""
    import subprocess
    import sys
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
    r = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                       env=env, timeout=timeout)
    assert (r.returncode == 0) == ok, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """-> (model folder, .tflite path, prado-export stdout) of a tiny en+th demo model."""
    import subprocess
    import sys
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
    model_dir = str(tmp_path_factory.mktemp("tiny_export") / "model")
    r = subprocess.run([sys.executable, "-m", "prado_tiny.train_main", f"--model_dir={model_dir}",
                        *TINY_TRAIN_FLAGS], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    tflite = os.path.join(model_dir, "m.tflite")
    r = subprocess.run([sys.executable, "-m", "prado_tiny.export_main", f"--model_dir={model_dir}",
                        f"--output={tflite}", "--calibration_examples=64", "--parity_examples=100",
                        # 100 examples of a barely trained model: one flipped example moves the
                        # average by 1-2 points, so the default 1-point gate would be noise here.
                        "--max_exact_match_drop=10"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    return model_dir, tflite, r.stdout


# A tiny trained BiLSTM with an embedding table (the reference of embedding compression),
# shared by test_compress_main and test_warm_start: 12 demo epochs, about 25 seconds.
TINY_BILSTM_FLAGS = ["--model=bilstm", "--dataset=demo", "--languages=en",
                     "--wordpiece_vocab_size=300", "--embedding_dim=32", "--state_dim=16",
                     "--max_seq_len=16", "--batch_size=32", "--qat_epochs=1",
                     "--learning_rate=0.01", "--warmup_steps=2", "--progress=false"]


@pytest.fixture(scope="session")
def tiny_bilstm_reference(tmp_path_factory):
    """-> model folder of a tiny trained uncompressed BiLSTM on the demo data."""
    ref = str(tmp_path_factory.mktemp("bilstm_reference") / "ref")
    run_module("prado_tiny.train_main", f"--model_dir={ref}", *TINY_BILSTM_FLAGS, "--epochs=12")
    return ref


@pytest.fixture(scope="session")
def tiny_bilstm_codes(tmp_path_factory, tiny_bilstm_reference):
    """-> (model folder, prado-train output) of task-aware codes (M=4, K=16) started from the
    reference (prado-train --init_from), 4 more epochs; shared by test_compress_main and
    test_bilstm's export of a compressed embedding."""
    codes = str(tmp_path_factory.mktemp("bilstm_codes") / "codes")
    out = run_module("prado_tiny.train_main", f"--model_dir={codes}", *TINY_BILSTM_FLAGS,
                     "--epochs=4", "--embedding=codes", "--num_codebooks=4", "--codebook_size=16",
                     f"--init_from={tiny_bilstm_reference}")
    return codes, out


# A tiny model that still learns (about 50% dev tree exact match on en + th after 5 epochs,
# about 45 s on 2 cores); QAT for the last 2 epochs so that the int8 pair keeps its accuracy.
TINY_MATT = ["--model=pqrnn_matt", "--dataset=demo", "--languages=en,th", "--max_seq_len=32",
             "--num_features=64", "--hidden_dim=64", "--state_dim=32", "--num_layers=1",
             "--decoder_dim=48", "--num_heads=2", "--ff_dim=96", "--max_target_len=48",
             "--batch_size=32", "--epochs=5", "--qat_epochs=2", "--progress=false",
             "--learning_rate=0.005", "--warmup_steps=5", "--label_smoothing=0.05",
             "--beam_width=3", "--checkpoint_secs=0"]
PARITY_EXAMPLES = 40


@pytest.fixture(scope="session")
def tiny_matt(tmp_path_factory):
    """-> dict(model_dir, tflite, decoder, tensors, train_out, export_out) of a tiny trained and
    exported pQRNN-MAtt (`tensors`: its `--tensor_report` JSON)."""
    root = tmp_path_factory.mktemp("pqrnn_matt")
    model_dir = str(root / "model")
    train_out = run_module("prado_tiny.train_main", f"--model_dir={model_dir}", *TINY_MATT)
    tflite = str(root / "export" / "parser.tflite")
    export_out = run_module("prado_tiny.export_main", f"--model_dir={model_dir}",
                            f"--output={tflite}", "--calibration_examples=64",
                            f"--parity_examples={PARITY_EXAMPLES}",
                            # 40 examples of a barely trained model: one flipped parse moves the
                            # score by 2.5 points, so the default 1-point gate would be noise.
                            "--max_exact_match_drop=15",
                            f"--tensor_report={root / 'export' / 'tensors.json'}")
    return dict(model_dir=model_dir, tflite=tflite, decoder=str(root / "export" / "parser.decoder.tflite"),
                tensors=str(root / "export" / "tensors.json"), train_out=train_out,
                export_out=export_out)
