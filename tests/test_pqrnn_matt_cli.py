"""pQRNN-MAtt through the user commands, end to end on the demo data (en + th): prado-train
--model=pqrnn_matt, prado-export (an int8 encoder and an int8 one-step decoder), prado-eval on the
model folder and on the .tflite pair (tree exact match, predictions with `parse`), the Predictor
on raw text; a clear error for a dataset without parses; plus the in-process pieces (seq2seq
feature sets, the flat frame derived from generated ids)."""
import json
import os

import numpy as np
import pytest

from conftest import PARITY_EXAMPLES, TINY_MATT, run_module
from prado_tiny.data import demo
from prado_tiny.data.parse import canonical, parse_tree
from prado_tiny.data.seq2seq_targets import OutputVocab
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.token_features import featurize_seq2seq


def _done(out):
    lines = [x for x in out.splitlines() if x.startswith("prado-train: done ")]
    assert len(lines) == 1, out[-3000:]
    return json.loads(lines[0][len("prado-train: done "):])


@pytest.fixture(scope="module")
def matt(tiny_matt):
    """conftest's session-wide tiny pQRNN-MAtt (test_bench_seq2seq times the same pair)."""
    return tiny_matt


@pytest.fixture(scope="module")
def dev_examples():
    return list(demo.read(split="dev", languages=["en", "th"]))


# -- prado-train -------------------------------------------------------------------------------

def test_train_writes_a_seq2seq_model_folder(matt):
    d, out = matt["model_dir"], matt["train_out"]
    assert os.path.isfile(os.path.join(d, "output_vocab.json"))
    assert not os.path.exists(os.path.join(d, "label_vocab.json"))
    with open(os.path.join(d, "model.json"), encoding="utf-8") as f:
        spec = json.load(f)
    with open(os.path.join(d, "output_vocab.json"), encoding="utf-8") as f:
        vocab = OutputVocab.from_dict(json.load(f))
    train = list(demo.read(split="train", languages=["en", "th"]))
    assert vocab == OutputVocab.build(train, max_source_len=32)
    assert spec["model_type"] == "pqrnn_matt" and spec["input"] == "codepoints"
    c = spec["config"]
    assert (c["output_vocab_size"], c["pointer_offset"], c["hidden_dim"], c["bottleneck_dim"]) == \
        (vocab.size, vocab.pointer_offset, 48, 64)
    assert spec["decoding"] == {"beam_width": 3, "length_penalty_alpha": 0.6}
    assert c["int8_internals"] is True  # the default: QAT rounds what the converter rounds
    # Examples without a target are counted and named, never dropped silently: one Thai
    # training utterance copies a word beyond the 32 source tokens.
    assert "seq2seq targets for 1499 of 1500 training examples; skipped 1 " \
           "(position_beyond_max_source_len 1)" in out, out[-3000:]
    done = _done(out)
    assert done["skipped_training_examples"] == 1 and done["training_examples"] == 1499
    # It learned: development tree exact match (constrained greedy), the early-stopping score.
    assert done["dev_tree_exact_match"] >= 0.2, done
    assert "dev tree exact match" in out
    with open(os.path.join(d, "history.json"), encoding="utf-8") as f:
        history = json.load(f)
    assert history["best_epoch"]["qat"] is True
    assert history["best_epoch"]["dev_score"] == history["best_epoch"]["dev_tree_exact_match"]


def test_dataset_without_parses_fails_clearly(datasets_dir, tmp_path):
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'm'}", "--model=pqrnn_matt",
                     "--dataset=atis", f"--data_dir={datasets_dir / 'atis'}", ok=False)
    assert "--dataset=atis have none" in out and "mtop, massive, demo" in out, out[-2000:]
    assert not os.path.exists(tmp_path / "m" / "model.json")


def test_bad_decoder_flags_fail_before_reading_data(tmp_path):
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'm'}", "--model=pqrnn_matt",
                     "--decoder_dim=30", "--num_heads=4", ok=False)
    assert "--decoder_dim=30 is not divisible by --num_heads=4" in out
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'm'}", "--model=pqrnn_matt",
                     "--intent_mode=multi_label", ok=False)
    assert "--intent_mode=multi_label does not apply" in out


# -- prado-export ------------------------------------------------------------------------------

def test_export_writes_two_builtin_int8_files_with_metadata(matt):
    from prado_tiny.export.inspect import check_builtin_int8
    from prado_tiny.export.metadata import read_metadata
    enc, dec, out = matt["tflite"], matt["decoder"], matt["export_out"]
    assert "int8 builtin ops only: yes" in out, out[-3000:]
    for path in (enc, dec):
        report = check_builtin_int8(path)
        assert report.ok, (path, report.violations)
        assert not [n for n in report.op_counts if "WHILE" in n or n.startswith("custom")]
    with open(os.path.join(matt["model_dir"], "output_vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    docs = {role: read_metadata(p) for role, p in (("encoder", enc), ("decoder", dec))}
    for role, doc in docs.items():
        assert doc["role"] == role and doc["model_type"] == "pqrnn_matt"
        assert doc["output_vocab"] == vocab
        assert doc["decoding"] == {"beam_width": 3, "length_penalty_alpha": 0.6,
                                   "max_target_len": 48, "constrain": True}
        assert doc["text_encoder"]["max_tokens"] == 32
        assert (doc["encoder_file"], doc["decoder_file"]) == ("parser.tflite", "parser.decoder.tflite")
    assert docs["encoder"]["pair_id"] == docs["decoder"]["pair_id"]
    with open(enc + ".json", encoding="utf-8") as f:
        report = json.load(f)
    assert report["bytes"] == os.path.getsize(enc) + os.path.getsize(dec)
    assert report["builtin_int8"] is True and report["parity_ok"] is True
    parity = report["parity"]
    assert parity["examples"] == PARITY_EXAMPLES and parity["beam_width"] == 3
    assert parity["tree_exact_match_drop"] == pytest.approx(
        100 * (parity["keras"]["tree_exact_match"] - parity["tflite"]["tree_exact_match"]))
    # The int8 pair generates the same parse as the Keras model for most utterances.
    assert parity["same_parse"] >= 0.7, parity
    assert f"parity on {PARITY_EXAMPLES} development examples" in out and "tree exact match" in out


def test_tensor_report_measures_the_exported_decoder(matt):
    """--tensor_report measures the decoder bytes just exported, not a second conversion: every
    int8 scale it reports is a scale of the shipped decoder file."""
    from ai_edge_litert.interpreter import Interpreter
    with open(matt["tensors"], encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["graph"] == "decoder step" and doc["measured_on"] == "parity examples"
    rows = doc["tensors"]
    assert rows and all(t["scale"] > 0 and t["relative_rms"] >= 0 for t in rows)
    shipped = set()
    for d in Interpreter(model_path=matt["decoder"]).get_tensor_details():
        shipped.update(np.float32(s) for s in d["quantization_parameters"]["scales"])
    reported = {np.float32(t["scale"]) for t in rows}
    assert reported <= shipped, sorted(reported - shipped)[:5]
    assert f"written to {matt['tensors']}" in matt["export_out"]


def test_the_host_passes_keys_and_state_between_the_pair_unchanged(matt):
    """The encoder's int8 keys and the decoder's mean state go back in as they came out: QAT
    pins each to one range on both sides, so the host never requantizes them. Values are the
    exception: the converter keeps the first of two fake-quants in a row (the value
    projection's own output range), the decoder input has `values_quant`'s, and the host
    requantizes, which is the same double rounding the Keras model does."""
    from prado_tiny.export.inspect import check_builtin_int8
    from prado_tiny.seq2seq_decoding import TFLiteStepper
    lite = TFLiteStepper(matt["tflite"], matt["decoder"])
    enc_out, dec_in, dec_out = lite._enc_out, lite._dec_in, lite._dec_out
    assert lite.layers == 2
    q = lambda t: (float(t["quantization"][0]), int(t["quantization"][1]))  # noqa: E731
    for name in ["keys_0", "keys_1", "pointer_keys"]:
        (s1, z1), (s2, z2) = q(enc_out[name]), q(dec_in[name])
        assert z1 == z2 and s1 == pytest.approx(s2, rel=1e-6), (name, s1, z1, s2, z2)
    for i in range(2):
        (s1, z1), (s2, z2) = q(dec_in[f"mean_{i}"]), q(dec_out[f"new_mean_{i}"])
        assert z1 == z2 and s1 == pytest.approx(s2, rel=1e-6), (i, s1, z1, s2, z2)
    assert dec_in["count"]["dtype"] == np.int32 and dec_in["mask"]["dtype"] == np.int8
    ops = set(check_builtin_int8(matt["tflite"]).op_counts) | set(check_builtin_int8(matt["decoder"]).op_counts)
    assert {"GATHER", "SOFTMAX", "BATCH_MATMUL", "FULLY_CONNECTED"} <= ops, ops


# -- prado-eval --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def evaluations(matt, tmp_path_factory):
    out = {}
    for kind, model in (("folder", matt["model_dir"]), ("tflite", matt["tflite"])):
        d = tmp_path_factory.mktemp(f"matt_eval_{kind}")
        preds, metrics = str(d / "p.jsonl"), str(d / "m.json")
        stdout = run_module("prado_tiny.eval_main", f"--model={model}", "--dataset=demo",
                            "--split=dev", "--languages=en,th", f"--predictions_out={preds}",
                            f"--metrics_out={metrics}")
        with open(preds, encoding="utf-8") as f:
            lines = [json.loads(x) for x in f]
        with open(metrics, encoding="utf-8") as f:
            doc = json.load(f)
        out[kind] = (stdout, lines, doc)
    return out


@pytest.mark.parametrize("kind", ["folder", "tflite"])
def test_eval_prints_tree_exact_match_per_language(evaluations, dev_examples, kind):
    stdout, lines, doc = evaluations[kind]
    rows = {line.split()[0]: line.split() for line in stdout.splitlines() if line.strip()}
    assert rows["language"][-1] == "EM" and rows["language"][-2] == "tree"
    for lang in ("en", "th"):
        assert rows[lang][1] == str(sum(e.language == lang for e in dev_examples))
        assert rows[lang][-1] != "-"  # tree exact match is scored
    result = doc["result"]
    assert result["average"]["tree_exact_match"] >= 0.2, result["average"]
    assert result["overall"]["parses"] == len(dev_examples)
    assert "prado-eval: tree exact match" in stdout and "flat exact match" in stdout
    assert doc["decoding"]["beam_width"] == 3
    if kind == "tflite":
        assert "encoder + decoder" in stdout and len(doc["files"]) == 2
        assert doc["bytes"] == sum(os.path.getsize(f) for f in doc["files"])


@pytest.mark.parametrize("kind", ["folder", "tflite"])
def test_predictions_carry_the_parse(evaluations, dev_examples, kind):
    _, lines, doc = evaluations[kind]
    assert [x["utterance"] for x in lines] == [e.utterance for e in dev_examples]
    hits = 0
    for x, e in zip(lines, dev_examples):
        assert x["parse"] is not None and canonical(x["parse"]) == x["parse"]  # a valid tree
        assert not x["repaired"]  # constrained search
        assert x["gold_parse"] == e.parse and len(x["slots"]) == len(e.tokens)
        root = parse_tree(x["parse"])
        assert x["intent"] == root.label  # the flat frame is the tree's
        if canonical(x["parse"]) == canonical(e.parse):
            hits += 1
            assert (x["intent"], x["slots"]) == (e.intent, list(e.slots))
    assert hits == round(doc["result"]["overall"]["tree_exact_match"] * len(lines))


def test_folder_and_tflite_mostly_agree(evaluations):
    folder, lite = evaluations["folder"][1], evaluations["tflite"][1]
    same = np.mean([a["parse"] == b["parse"] for a, b in zip(folder, lite)])
    assert same >= 0.7, same


# -- Predictor ---------------------------------------------------------------------------------

def test_predictor_returns_the_parse(matt, tmp_path):
    import shutil

    from prado_tiny.export.metadata import MetadataError
    from prado_tiny.predictor import EMPTY_MESSAGE, Predictor
    p = Predictor(matt["tflite"])
    assert p.seq2seq and p.decoder_path == matt["decoder"] and p.beam_width == 3
    for text in ("set an alarm for 7 am", "what's the weather in Paris tomorrow",
                 "ตั้งปลุกตอนเจ็ดโมงเช้า"):
        r = p.predict(text)
        assert r.parse is not None and canonical(r.parse) == r.parse, text
        root = parse_tree(r.parse)
        assert r.intent == root.label and 0.0 < r.intent_score <= 1.0
        assert len(r.tags) == len(r.tokens)
        for s in r.slots:
            assert s["text"] == text[s["start"]:s["end"]]
        d = r.as_dict()
        assert d["parse"] == r.parse and json.loads(json.dumps(d)) == d
    # Every word of the parse is copied from the utterance.
    r = p.predict("set an alarm for 7 am")
    words = parse_tree(r.parse).words()
    assert all(w in r.tokens for w in words), (r.parse, r.tokens)
    for bad in ("", "   "):
        with pytest.raises(ValueError, match=EMPTY_MESSAGE):
            p.predict(bad)
    with pytest.raises(TypeError):
        p.logits_for_tokens(["hi"])
    # The encoder alone: the missing decoder is named.
    shutil.copy(matt["tflite"], tmp_path / "alone.tflite")
    with pytest.raises(FileNotFoundError, match="decoder"):
        Predictor(tmp_path / "alone.tflite")
    # The decoder given as the model: told to pass the encoder.
    with pytest.raises(MetadataError, match="give the Predictor the encoder file"):
        Predictor(matt["decoder"])
    # A renamed pair still finds its decoder by the `.decoder.tflite` convention.
    shutil.copy(matt["tflite"], tmp_path / "renamed.tflite")
    shutil.copy(matt["decoder"], tmp_path / "renamed.decoder.tflite")
    assert Predictor(tmp_path / "renamed.tflite").predict("set an alarm for 7 am").parse == \
        r.parse


# -- in-process pieces -------------------------------------------------------------------------

def _zeros_featurizer(codepoints):
    return np.zeros(codepoints.shape[:2] + (4,), np.int8), None


def test_seq2seq_feature_set_batches_and_counts_skips():
    examples = demo.generate("en")["train"][:20]
    broken = dict(examples[1].to_dict(), parse="[IN:CREATE_ALARM [SL:DATE_TIME zzz ] ]")
    no_parse = dict(examples[2].to_dict(), parse=None)
    from prado_tiny.data.example import Example
    examples = examples[:1] + [Example.from_dict(broken), Example.from_dict(no_parse)] + examples[3:]
    vocab = OutputVocab.build(examples, max_source_len=16)
    enc = TextEncoder(max_tokens=16, max_chars=8)
    train = featurize_seq2seq(examples, enc, _zeros_featurizer, vocab, 16, 24)
    assert len(train) == len(examples) - 2
    assert train.skipped == {"word_not_in_tokens": 1, "no_parse": 1}
    assert "word_not_in_tokens 1" in train.skipped_summary()
    features, labels = train.batch([0, 3])
    longest = max(train.target_lengths[[0, 3]])
    assert labels["targets"].shape == features["decoder_inputs"].shape == (2, longest)
    assert features["projection"].shape == (2, max(train.lengths[[0, 3]]), 4)
    np.testing.assert_array_equal(features["decoder_inputs"][:, 0], [vocab.bos_id] * 2)
    ids = vocab.encode(examples[0])
    np.testing.assert_array_equal(labels["targets"][0, :len(ids)], ids)
    # Evaluation keeps every example (no target: length 0), counted the same way.
    dev = featurize_seq2seq(examples, enc, _zeros_featurizer, vocab, 16, 24, skip_unencodable=False)
    assert len(dev) == len(examples) and dev.skipped == train.skipped
    assert list(dev.target_lengths[1:3]) == [0, 0]
    # A target longer than the decoder: counted as target_too_long.
    short = featurize_seq2seq(examples, enc, _zeros_featurizer, vocab, 16, 8)
    assert short.skipped["target_too_long"] == sum(
        len(vocab.encode(ex)) > 8 for ex in examples if ex.parse and ex is not examples[1])
    assert len(short) == len(examples) - 2 - short.skipped["target_too_long"]


def test_flat_frame_of_gold_ids_is_the_gold_frame():
    from prado_tiny.evaluation import flat_from_ids, seq2seq_predictions
    examples = list(demo.read(split="dev", languages=["en", "th"]))
    vocab = OutputVocab.build(examples, max_source_len=64)
    ids = [vocab.encode(ex) for ex in examples]
    for ex, i in zip(examples, ids):
        assert flat_from_ids(vocab, i, len(ex.tokens)) == (ex.intent, list(ex.slots)), ex.parse
    preds = seq2seq_predictions(examples, ids, vocab)
    assert all(p["parse"] == canonical(ex.parse) for p, ex in zip(preds, examples))
    # A slot holding an intent spans every token it copies (MTOP's flat parses do).
    v = OutputVocab.build(["[IN:CALL [SL:CONTACT [IN:GET_CONTACT [SL:NAME Ann ] "
                           "[SL:REL mom ] ] ] ]"], max_source_len=8)
    seq = [v.id("[IN:CALL"), v.id("[SL:CONTACT"), v.id("[IN:GET_CONTACT"), v.id("[SL:NAME"),
           v.pointer(1), v.close_id, v.id("[SL:REL"), v.pointer(3), v.close_id, v.close_id,
           v.close_id, v.close_id, v.eos_id]
    assert flat_from_ids(v, seq, 4) == ("CALL", ["O", "B-CONTACT", "I-CONTACT", "I-CONTACT"])


# -- resume (last: changes the folder) ---------------------------------------------------------

def test_rerun_resumes_the_finished_folder(matt, evaluations):
    # Last: it changes the folder's beam default (`evaluations` ran with the old one). The
    # derived config (output vocabulary size, pointer offset) must not count as changed flags;
    # a new beam default is kept without retraining.
    out = run_module("prado_tiny.train_main", f"--model_dir={matt['model_dir']}", *TINY_MATT[:-2],
                     "--beam_width=2", "--checkpoint_secs=0")
    assert "already finished" in out, out[-3000:]
    with open(os.path.join(matt["model_dir"], "model.json"), encoding="utf-8") as f:
        assert json.load(f)["decoding"]["beam_width"] == 2
    changed = run_module("prado_tiny.train_main", f"--model_dir={matt['model_dir']}", *TINY_MATT,
                         "--decoder_dim=32", ok=False)
    assert "hidden_dim: 48 -> 32" in changed
