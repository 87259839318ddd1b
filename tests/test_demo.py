"""The built-in demo dataset: determinism, coverage, label consistency, and the MTOP file round trip."""
import collections
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import unicodedata

import pytest

from prado_tiny.data import demo, mtop, registry
from prado_tiny.data.align import bio_to_spans
from prado_tiny.data.example import ReadReport
from prado_tiny.data.parse import flat_frame, parse_tree
from prado_tiny.data.tokenizer import tokenize

SPLITS = ("train", "dev", "test")


def _digest(seed=0):
    h = hashlib.sha256()
    for split in SPLITS:
        for ex in demo.read(split=split, seed=seed):
            h.update(json.dumps(ex.to_dict(), ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return h.hexdigest()


@pytest.fixture(scope="module")
def data():
    return {split: list(demo.read(split=split)) for split in SPLITS}


def test_same_seed_same_examples_in_process():
    first = _digest(0)
    demo._generate.cache_clear()  # regenerate rather than reuse the cache
    assert _digest(0) == first
    assert _digest(1) != first


def test_same_seed_same_examples_across_processes():
    code = ("import hashlib, json\nfrom prado_tiny.data import demo\nh = hashlib.sha256()\n"
            "for s in ('train', 'dev', 'test'):\n"
            "    for ex in demo.read(split=s, seed=0):\n"
            "        h.update(json.dumps(ex.to_dict(), ensure_ascii=False, sort_keys=True).encode('utf-8'))\n"
            "print(h.hexdigest())\n")
    # A different hash seed in the child: generation must not depend on hash().
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest(0)


def test_language_subset_does_not_change_examples(data):
    th = list(demo.read(split="dev", languages="th"))
    assert [e.to_dict() for e in th] == [e.to_dict() for e in data["dev"] if e.language == "th"]


def test_sizes_languages_and_scripts(data):
    assert {s: len(v) for s, v in data.items()} == {"train": 3000, "dev": 500, "test": 500}
    for split, exs in data.items():
        per_lang = collections.Counter(e.language for e in exs)
        assert per_lang == {lang: demo.SIZES[split] for lang in ("en", "de", "hi", "th")}
    scripts = collections.defaultdict(set)
    for e in data["train"]:
        for ch in e.utterance:
            if ch.isalpha():
                scripts[e.language].add(unicodedata.name(ch).split()[0])
    assert "LATIN" in scripts["en"] and "LATIN" in scripts["de"]
    assert "DEVANAGARI" in scripts["hi"]
    assert "THAI" in scripts["th"]
    assert set(demo.available_languages()) == {"en", "de", "hi", "th"}


def test_inventory_and_difficulty(data):
    train = data["train"]
    for lang in demo.LANGUAGES:
        exs = [e for e in train if e.language == lang]
        assert {e.intent for e in exs} == set(demo.INTENTS)
        types = {t[2:] for e in exs for t in e.slots if t != "O"}
        assert types == set(demo.SLOT_TYPES)
        # Some utterances have no slot, and many slot values span several tokens.
        assert sum(all(t == "O" for t in e.slots) for e in exs) >= 20
        chunks = [c for e in exs for c in bio_to_spans(e.slots)]
        assert sum(end - start > 1 for _, start, end in chunks) >= 0.3 * len(chunks)
        # The same contact appears as RECIPIENT and as SENDER: the slot type depends on context.
        by_type = collections.defaultdict(set)
        for e in exs:
            for label, s, t in bio_to_spans(e.slots):
                by_type[label].add(" ".join(e.tokens[s:t]).lower())
        assert by_type["RECIPIENT"] & by_type["SENDER"]
    assert len(demo.INTENTS) >= 8 and len(demo.SLOT_TYPES) >= 8
    # Intents share words: no single word gives the intent of every utterance that holds it.
    words = collections.defaultdict(set)
    for e in train:
        for t in e.tokens:
            words[(e.language, t.lower())].add(e.intent)
    assert len(words[("en", "next")]) >= 3
    assert len(words[("en", "alarm")]) >= 3
    assert len(words[("de", "wecker")]) >= 3


def test_splits_do_not_share_utterances(data):
    seen = {}
    for split, exs in data.items():
        for e in exs:
            key = (e.language, e.utterance.casefold())
            assert key not in seen, f"{e.utterance!r} in {seen.get(key)} and {split}"
            seen[key] = split
    ids = [e.id for exs in data.values() for e in exs]
    assert len(set(ids)) == len(ids)


def test_tokens_offsets_and_bio_are_consistent(data):
    for exs in data.values():
        for e in exs:
            assert [(t, s, x) for t, (s, x) in zip(e.tokens, e.offsets)] == tokenize(e.utterance)
            assert len(e.slots) == len(e.tokens)
            prev = "O"
            for tag in e.slots:
                assert tag == "O" or tag[:2] in ("B-", "I-")
                if tag.startswith("I-"):
                    assert prev[2:] == tag[2:], e
                prev = tag
            assert e.domain == demo.DOMAINS[e.intent]
            assert e.unaligned is None
            assert "\t" not in e.utterance and "\n" not in e.utterance


def test_every_slot_round_trips_through_the_parse(data):
    for exs in data.values():
        for e in exs:
            intent, slots = flat_frame(parse_tree(e.parse))
            assert intent == e.intent
            chunks = bio_to_spans(e.slots)
            assert [label for label, _ in slots] == [label for label, _, _ in chunks]
            for (label, text), (_, s, t) in zip(slots, chunks):
                start, end = e.offsets[s][0], e.offsets[t - 1][1]
                surface = e.utterance[start:end]
                # Whitespace aside (Thai parses space their words), the parse holds the slot's text.
                assert "".join(text.split()) == "".join(surface.split()), (e.parse, surface)
                if e.language != "th":
                    assert text == " ".join(e.tokens[s:t])


def test_thai_is_unsegmented_but_its_parse_is_not(data):
    th = [e for e in data["train"] if e.language == "th"]
    for e in th:
        assert not any(demo._is_thai(e.utterance[i - 1]) and e.utterance[i] == " " and demo._is_thai(e.utterance[i + 1])
                       for i in range(1, len(e.utterance) - 1))
    assert any(" " in text for e in th for _, text in flat_frame(e.parse)[1]
               if all(demo._is_thai(c) or c == " " for c in text))


def test_written_files_read_back_through_the_mtop_reader(tmp_path, data):
    paths = demo.write(str(tmp_path))
    assert sorted(os.path.relpath(p, tmp_path) for p in paths) == sorted(
        f"{lang}/{name}.txt" for lang in demo.LANGUAGES for name in ("train", "eval", "test"))
    line = (tmp_path / "en" / "train.txt").read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert len(line) == 5 and line[4] == "en_XX" and line[1].startswith("[IN:")
    assert mtop.available_languages(str(tmp_path)) == sorted(demo.LANGUAGES)

    def strip(e):
        return dataclasses.replace(e, id="", source="")

    for split, exs in data.items():
        report = ReadReport()
        back = list(mtop.read(str(tmp_path), split, report=report))
        assert [strip(e) for e in back] == [strip(e) for e in exs]
        assert report.rows == len(exs) and not report.unaligned and not report.skipped
        # demo.read on the written folder reads the files.
        via_demo = list(demo.read(str(tmp_path), split, languages="hi"))
        assert [strip(e) for e in via_demo] == [strip(e) for e in exs if e.language == "hi"]
        assert via_demo[0].source.startswith(str(tmp_path))


def test_read_arguments_and_report():
    report = ReadReport()
    exs = list(demo.read(split="validation", languages=["EN", "de-DE"], report=report))
    assert len(exs) == 250 and report.rows == 250 and {e.language for e in exs} == {"en", "de"}
    with pytest.raises(ValueError, match="available"):
        demo.read(languages="fr")
    with pytest.raises(ValueError, match="unknown split"):
        demo.read(split="holdout")
    # Through the registry, with no data folder.
    assert len(list(registry.read_dataset("demo", None, "test", languages="th"))) == 125
    # Callers may mutate what they get without changing the next read.
    exs[0].tokens.append("x")
    assert list(demo.read(split="dev", languages="en"))[0].tokens[-1] != "x"
