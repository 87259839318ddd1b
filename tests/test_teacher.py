"""Tests for prado_tiny.data.teacher (the teacher file, soft targets) and the distillation loss,
plus prado-eval --teacher_out feeding prado-train --teacher on the command line."""
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf

from prado_tiny.data import demo
from prado_tiny.data.teacher import (TeacherError, TeacherOutputs, attach, soft_targets,
                                     write_teacher)
from prado_tiny.data.token_features import TokenFeatureSet, encode_labels
from prado_tiny.data.vocab import LabelVocab
from prado_tiny.trainer import Trainer, TrainConfig

from conftest import TINY_TRAIN_FLAGS, run_module


@pytest.fixture(scope="module")
def examples():
    return list(demo.read(split="train", languages=["en", "th"]))[:20]


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def random_logits(examples, vocab, seed=0):
    rng = np.random.default_rng(seed)
    li = [rng.normal(0, 3, vocab.num_intents) for _ in examples]
    ls = [rng.normal(0, 3, (len(ex.tokens), vocab.num_slot_tags)) for ex in examples]
    return li, ls


def lengths_of(examples, max_len=64):
    return np.array([min(len(ex.tokens), max_len) for ex in examples], np.int32)


def test_round_trip_gives_softmax_at_temperature(tmp_path, examples):
    vocab = LabelVocab.from_examples(examples)
    li, ls = random_logits(examples, vocab)
    path = str(tmp_path / "t.jsonl")
    assert write_teacher(path, examples, li, ls, vocab) == len(examples)
    teacher = TeacherOutputs.load(path)
    assert teacher.intents == vocab.get_config()["intents"] and len(teacher.entries) <= 20
    lengths = lengths_of(examples)
    t = soft_targets(teacher, examples, lengths, vocab, temperature=2.0)
    assert t.missing == 0 and np.all(t.weight == 1)
    # Written with 4 decimals: equal to that precision.
    np.testing.assert_allclose(t.intents[3], softmax(li[3] / 2.0), atol=1e-3)
    start = int(lengths[:3].sum())
    np.testing.assert_allclose(t.slots[start:start + lengths[3]].astype(np.float32),
                               softmax(ls[3] / 2.0), atol=2e-3)
    np.testing.assert_allclose(t.slots.astype(np.float32).sum(-1), 1.0, atol=1e-2)


def test_labels_are_matched_by_name(tmp_path, examples):
    student = LabelVocab.from_examples(examples)
    names = student.get_config()["intents"][1:]
    # The teacher knows the intents in reverse order, plus one the student never saw, and
    # lacks the student's first intent.
    teacher_vocab = LabelVocab(list(reversed(names[1:])) + ["never:seen"],
                               student.get_config()["slot_tags"][2:])
    li, ls = random_logits(examples, teacher_vocab, seed=1)
    path = str(tmp_path / "t.jsonl")
    write_teacher(path, examples, li, ls, teacher_vocab)
    t = soft_targets(TeacherOutputs.load(path), examples, lengths_of(examples), student, 1.0)
    first = student.encode_intent(names[0])
    assert np.all(t.intents[:, first] == 0)
    np.testing.assert_allclose(t.intents.sum(-1), 1.0, atol=1e-5)
    # The teacher's top intent among the shared ones is the student's top intent.
    tcfg = teacher_vocab.get_config()["intents"]
    shared = [j for j, n in enumerate(tcfg) if n in names[1:]]
    best = tcfg[max(shared, key=lambda j: li[0][j])]
    assert student.decode_intent(int(np.argmax(t.intents[0]))) == best


def test_missing_examples_train_on_gold_only(tmp_path, examples):
    vocab = LabelVocab.from_examples(examples)
    li, ls = random_logits(examples[:5], vocab)
    path = str(tmp_path / "t.jsonl")
    write_teacher(path, examples[:5], li, ls, vocab)
    t = soft_targets(TeacherOutputs.load(path), examples, lengths_of(examples), vocab, 1.0)
    keys = {(e.language, e.utterance) for e in examples[:5]}
    expect = [1.0 if (e.language, e.utterance) in keys else 0.0 for e in examples]
    assert t.weight.tolist() == expect and t.missing == expect.count(0.0)


def test_token_mismatch_names_file_and_line(tmp_path, examples):
    vocab = LabelVocab.from_examples(examples)
    li, ls = random_logits(examples, vocab)
    path = tmp_path / "t.jsonl"
    write_teacher(str(path), examples, li, ls, vocab)
    lines = path.read_text(encoding="utf-8").splitlines()
    doc = json.loads(lines[3])
    doc["tokens"][0] = doc["tokens"][0] + "x"
    lines[3] = json.dumps(doc, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TeacherError, match=r"t\.jsonl:4: tokens .* differ"):
        soft_targets(TeacherOutputs.load(str(path)), examples, lengths_of(examples), vocab, 1.0)


@pytest.mark.parametrize("content, message", [
    ('{"a": 1}\n', r":1: the first line must be the header"),
    ('{"format": "prado-teacher", "intents": ["x"], "slot_tags": ["O"]}\nnot json\n', r":2: not JSON"),
    ('{"format": "prado-teacher", "intents": ["x", "y"], "slot_tags": ["O"]}\n'
     '{"language": "en", "utterance": "hi", "tokens": ["hi"], "intent_logits": [1], '
     '"slot_logits": [[0]]}\n', r":2: 'intent_logits' has 1 values; the header names 2"),
    ('{"format": "prado-teacher", "intents": ["x"], "slot_tags": ["O"]}\n'
     '{"language": "en", "utterance": "hi", "tokens": ["hi"], "intent_logits": [1], '
     '"slot_logits": [[0], [1]]}\n', r":2: 2 slot rows for 1 tokens"),
    ('', r":0: empty teacher file"),
])
def test_malformed_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TeacherError, match=message):
        TeacherOutputs.load(str(path))
    with pytest.raises(TeacherError, match="not found"):
        TeacherOutputs.load(str(tmp_path / "none.jsonl"))


def feature_set(examples, vocab, targets=None):
    lengths = lengths_of(examples)
    intents, slots, weight = encode_labels(examples, vocab, 64)
    values = np.zeros((int(lengths.sum()), 3), np.int8)
    starts = np.concatenate([[0], np.cumsum(lengths[:-1])]).astype(np.int64)
    fs = TokenFeatureSet(list(examples), values, lengths, starts, intents, slots, weight,
                         "projection")
    return attach(fs, targets) if targets is not None else fs


def losses(alpha, temperature, labels, out):
    fake = types.SimpleNamespace(intent_mode="joint", config=TrainConfig(
        distill_alpha=alpha, distill_temperature=temperature))
    return Trainer._losses(fake, labels, out).numpy()


def test_distillation_loss(tmp_path, examples):
    vocab = LabelVocab.from_examples(examples)
    li, ls = random_logits(examples, vocab)
    path = str(tmp_path / "t.jsonl")
    write_teacher(path, examples, li, ls, vocab)
    t = soft_targets(TeacherOutputs.load(path), examples, lengths_of(examples), vocab, 2.0)
    fs = feature_set(examples, vocab, t)
    feats, labels = fs.batch(np.arange(6))
    assert labels["teacher_slots"].shape == labels["slots"].shape + (vocab.num_slot_tags,)
    labels = dict(labels, token_mask=feats["token_mask"])
    gold_only = {k: v for k, v in labels.items() if not k.startswith("teacher")}
    rng = np.random.default_rng(5)
    out = {"intent": tf.constant(rng.normal(0, 1, labels["teacher_intent"].shape), tf.float32),
           "slots": tf.constant(rng.normal(0, 1, labels["teacher_slots"].shape), tf.float32)}
    gold = losses(0.5, 2.0, gold_only, out)
    np.testing.assert_allclose(losses(1.0, 2.0, labels, out), gold, rtol=1e-6)
    mixed = losses(0.5, 2.0, labels, out)
    assert np.all(mixed != gold)
    # A student that outputs the teacher's logits has zero KL: the loss is a * gold.
    teacher_out = {"intent": tf.math.log(tf.constant(labels["teacher_intent"]) + 1e-9) * 2.0,
                   "slots": tf.math.log(tf.constant(labels["teacher_slots"]) + 1e-9) * 2.0}
    np.testing.assert_allclose(losses(0.3, 2.0, labels, teacher_out),
                               0.3 * losses(0.3, 2.0, gold_only, teacher_out), rtol=1e-3, atol=1e-3)
    # Examples without a teacher train on gold only.
    no_teacher = dict(labels, teacher_weight=np.zeros(6, np.float32))
    np.testing.assert_allclose(losses(0.5, 2.0, no_teacher, out), gold, rtol=1e-6)




def test_cli_eval_writes_a_teacher_that_train_reads(tiny_export, tmp_path):
    model_dir, tflite, _ = tiny_export
    teacher = str(tmp_path / "teacher.jsonl")
    out = run_module("prado_tiny.eval_main", f"--model={tflite}", "--dataset=demo", "--split=train",
              "--languages=en,th", f"--teacher_out={teacher}")
    assert "teacher outputs of" in out
    header = json.loads(open(teacher, encoding="utf-8").readline())
    assert header["format"] == "prado-teacher" and header["intents"][0] == "<unk>"
    student = str(tmp_path / "student")
    out = run_module("prado_tiny.train_main", f"--model_dir={student}", f"--teacher={teacher}",
              "--distill_alpha=0.3", "--distill_temperature=3", *TINY_TRAIN_FLAGS)
    assert "distilling from" in out and "(alpha 0.3, temperature 3.0)" in out
    spec = json.load(open(os.path.join(student, "model.json"), encoding="utf-8"))
    assert spec["data"]["teacher"]["alpha"] == 0.3
    # Resuming with another temperature is refused, like any other changed setting.
    out = run_module("prado_tiny.train_main", f"--model_dir={student}", f"--teacher={teacher}",
              "--distill_alpha=0.3", "--distill_temperature=1", *TINY_TRAIN_FLAGS, ok=False)
    assert "temperature" in out
    # A teacher file of another dataset matches nothing: a clear error, not a silent gold run.
    other = tmp_path / "other.jsonl"
    other.write_text(open(teacher, encoding="utf-8").readline(), encoding="utf-8")
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 's2'}", f"--teacher={other}",
              *TINY_TRAIN_FLAGS, ok=False)
    assert "holds none of the training examples" in out
