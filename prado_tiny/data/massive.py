"""Reader for Amazon MASSIVE (FitzGerald et al., 2022) in the two layouts it is found in.

**Official JSONL** (`<data_dir>/<locale>.jsonl`, or `<data_dir>/data/<locale>.jsonl` as the
release archive unpacks): one JSON object per line with `id`, `locale` (`en-US`), `partition`
(`train`/`dev`/`test`), `scenario`, `intent`, `utt` and `annot_utt`, where slots are written
in place as `[slot : words]` (`wake me up at [time : nine am]`). Tokens are the whitespace tokens
of `utt` (MASSIVE's own segmentation: Thai, for one, is space-segmented by its annotators); slots
are placed by character span, mapped from `annot_utt` to `utt` ignoring whitespace, and a token
is split only where `annot_utt` puts a slot boundary inside it (for locales such as ja-JP whose
`annot_utt` brackets part of an unspaced word).

**Per-language folders** (as re-serialised by CoF-CoT): `<data_dir>/<lang>/<split>_<lang>_<kind>.txt`:
- `_sp`: utterance, bracketed parse with `]` glued to the last word (`[IN:alarm_set [SL:time nine
  am] ]`), scenario, locale: slot text placed like MTOP's (`parse.flat_to_bio`) on the whitespace
  tokens, preferring occurrences that are whole tokens;
- `_raw`: utterance, intent, BIO tags (one per whitespace token), scenario, locale: tags used as is;
- `_conll`: `token<TAB>tag` lines, a blank line after each example; it carries no intent or
  scenario, so its examples have `intent=""` and `parse=None`.

`read` uses `_sp` where present, then `_raw`, then `_conll`. The published `_raw` and `_conll` tags
are not faithful: they drop every slot that starts on the first token (`[player_setting :
shuffle] this playlist` is all `O`) and tag repeated words at the wrong occurrence, which changes
504 of the 13,547 en-US train+dev rows and 4,194 of the 13,547 hi-IN rows. The `_sp` files give the
same tokens, tags, intents and parses as the official en-US JSONL on all 13,547 rows.

Every example's `parse` is the decoupled parse in MTOP spelling (`[IN:alarm_set [SL:time nine am
] ]`): slots only, as MASSIVE's own `_sp` files write it, so that tree exact match means the same
for every layout. Split names: `dev` is also found as `eval`/`valid` where a file is named so.
"""
from __future__ import annotations

import json
import os
import re
from typing import Iterable, Iterator, List, Optional, Tuple

from prado_tiny.data.align import bad_bio_tag, bio_to_spans, place_spans, split_at_boundaries
from prado_tiny.data.example import DataError, Example, ReadReport
from prado_tiny.data.lines import read_rows, split_columns
from prado_tiny.data.names import canonical_split, iso_language, parse_languages, split_names
from prado_tiny.data.parse import Intent, ParseError, Slot, flat_frame, flat_to_bio, parse_tree, to_string
from prado_tiny.data.tokenizer import whitespace_tokenize

KINDS = ("sp", "raw", "conll")  # order of preference: see the module docstring
_FOLDER_FILE_RE = re.compile(r"^([A-Za-z]+)_([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)?)_(raw|sp|conll)\.txt$")
_JSONL_RE = re.compile(r"^([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)?)\.jsonl$")
_JSON_KEYS = ("id", "locale", "partition", "intent", "utt", "annot_utt")


# ---------------------------------------------------------------------------------------------
# Row parsers shared by the layouts


def _decoupled(intent: str, slots: Iterable[Tuple[str, List[str]]]) -> str:
    """`[IN:intent [SL:type w1 w2 ] ... ]`: MASSIVE's decoupled parse in MTOP spelling."""
    return to_string(Intent(intent, [Slot(label, list(words)) for label, words in slots]))


def _parse_from_tags(intent: str, tokens: List[str], tags: List[str]) -> str:
    return _decoupled(intent, [(label, tokens[a:b]) for label, a, b in bio_to_spans(tags)])


def _language(locale: str, err) -> str:
    try:
        return iso_language(locale)
    except ValueError:
        raise err(f"bad locale {locale!r} (expected e.g. en-US)") from None


def _check_language(lang: str, language: Optional[str], locale: str, err) -> None:
    if language is not None and lang != iso_language(language):
        raise err(f"locale {locale!r} is not language {language!r} of this file")


def _example(ex_id, lang, utterance, tokens, intent, tags, parse, domain, problems=()) -> Example:
    return Example(id=ex_id, language=lang, utterance=utterance, tokens=[t for t, _, _ in tokens],
                   offsets=[(s, e) for _, s, e in tokens], intent=intent, slots=list(tags),
                   parse=parse, domain=domain, unaligned="; ".join(problems) or None)


def _check_tags(tags: List[str], err) -> None:
    problem = bad_bio_tag(tags)
    if problem:
        raise err(problem)


def _raw_row(cols: List[str], err) -> tuple:
    """`(language, locale, partial Example)` of a `_raw` row; tags are the file's own."""
    utterance, intent, tag_text, scenario, locale = cols
    if not utterance.strip():
        raise err("empty utterance")
    if not intent.strip():
        raise err("empty intent")
    lang = _language(locale, err)
    tokens = whitespace_tokenize(utterance)
    tags = tag_text.split()
    if len(tags) != len(tokens):
        raise err(f"{len(tags)} BIO tags for {len(tokens)} whitespace tokens")
    _check_tags(tags, err)
    words = [t for t, _, _ in tokens]
    return lang, locale, _example("", lang, utterance, tokens, intent, tags,
                                  _parse_from_tags(intent, words, tags), scenario)


def _sp_row(cols: List[str], err) -> tuple:
    """`(language, locale, partial Example)` of an `_sp` row; slot text placed on the tokens."""
    utterance, parse, scenario, locale = cols
    if not utterance.strip():
        raise err("empty utterance")
    lang = _language(locale, err)
    try:
        tree = parse_tree(parse)
    except ParseError as e:
        raise err(f"malformed parse (column 2): {e.message}: {parse!r}") from None
    intent, slots = flat_frame(tree)
    tokens, tags, problems = flat_to_bio(utterance, slots, whitespace_tokenize(utterance))
    return lang, locale, _example("", lang, utterance, tokens, intent, tags, to_string(tree),
                                  scenario, problems)


def _parse_annot(annot: str, err) -> Tuple[str, List[Tuple[str, int, int]]]:
    """`annot_utt` -> (its plain text, [(slot, start, end)] into that text)."""
    text, spans = [], []
    length, i = 0, 0
    while i < len(annot):
        ch = annot[i]
        if ch == "]":
            raise err(f"unmatched ']' at char {i} of annot_utt {annot!r}")
        if ch != "[":
            text.append(ch)
            length += 1
            i += 1
            continue
        close = annot.find("]", i + 1)
        inner_open = annot.find("[", i + 1)
        if close == -1 or (inner_open != -1 and inner_open < close):
            raise err(f"unclosed '[' at char {i} of annot_utt {annot!r}")
        label, sep, words = annot[i + 1:close].partition(" : ")
        label = label.strip()
        if not sep or not label or any(c.isspace() for c in label):
            raise err(f"slot at char {i} of annot_utt is not '[type : words]': {annot[i:close + 1]!r}")
        if not words.strip():
            raise err(f"slot {label!r} at char {i} of annot_utt has no words")
        spans.append((label, length, length + len(words)))
        text.append(words)
        length += len(words)
        i = close + 1
    return "".join(text), spans


def _squeeze_index(text: str) -> List[int]:
    """For each non-whitespace character of `text`, in order, its index in `text`."""
    return [i for i, ch in enumerate(text) if not ch.isspace()]


def _json_row(data, err) -> tuple:
    """`(partition, language, locale, Example)` of one official JSONL row."""
    if not isinstance(data, dict):
        raise err("a JSONL row must be a JSON object")
    missing = [k for k in _JSON_KEYS if not isinstance(data.get(k), str)]
    if missing:
        raise err(f"missing or non-string field(s): {', '.join(missing)}")
    utterance, annot, intent = data["utt"], data["annot_utt"], data["intent"]
    if not utterance.strip():
        raise err("empty utt")
    if not intent.strip():
        raise err("empty intent")
    lang = _language(data["locale"], err)
    plain, annot_spans = _parse_annot(annot, err)
    tokens = whitespace_tokenize(utterance)
    slots = [(label, plain[s:e]) for label, s, e in annot_spans]
    parse = _decoupled(intent, [(label, words.split()) for label, words in slots])
    utt_index, plain_index = _squeeze_index(utterance), _squeeze_index(plain)
    if [utterance[i] for i in utt_index] == [plain[i] for i in plain_index]:
        # annot_utt is utt with brackets (whitespace may differ): map spans character for character.
        position = {p: k for k, p in enumerate(plain_index)}
        spans = []
        for label, s, e in annot_spans:
            inner = [position[p] for p in range(s, e) if p in position]
            spans.append((label, utt_index[inner[0]], utt_index[inner[-1]] + 1))
        tokens = split_at_boundaries(utterance, tokens, spans)
        tags, problems = place_spans(tokens, spans)
    else:
        # The texts differ beyond whitespace: fall back to searching the slot text in utt.
        tokens, tags, problems = flat_to_bio(utterance, slots, tokens)
        if problems:
            problems.insert(0, "annot_utt_differs_from_utt: its text without brackets is not utt")
    ex = _example(data["id"], lang, utterance, tokens, intent, tags, parse, data.get("scenario"),
                  problems)
    return data["partition"], lang, data["locale"], ex


# ---------------------------------------------------------------------------------------------
# Files


def file_kind(path: str) -> str:
    """`jsonl`, `raw`, `sp` or `conll`, from the file name, else from its first line."""
    name = os.path.basename(str(path))
    if name.endswith(".jsonl"):
        return "jsonl"
    m = _FOLDER_FILE_RE.match(name)
    if m:
        return m.group(3)
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", errors="replace").strip("\r\n")
    if first.lstrip().startswith("{"):
        return "jsonl"
    return {5: "raw", 4: "sp", 2: "conll"}.get(len(first.split("\t")), "raw")


def _split_of(path: str, split: Optional[str]) -> str:
    """The split named in a folder file's name (`dev` of `dev_de_raw.txt`), for ids."""
    if split:
        return split
    m = _FOLDER_FILE_RE.match(os.path.basename(path))
    return m.group(1) if m else os.path.splitext(os.path.basename(path))[0]


def read_file(path: str, language: Optional[str] = None, report: Optional[ReadReport] = None,
              skip_bad_rows: bool = False, split: Optional[str] = None,
              kind: Optional[str] = None) -> Iterator[Example]:
    """Yields the examples of one MASSIVE file of any kind (see the module docstring).

    Args:
      path: a `<locale>.jsonl`, `_raw.txt`, `_sp.txt` or `_conll.txt` file.
      language: ISO code the rows must have (checked against their locale); None accepts any. A
        `_conll` file has no locale column, so its language comes from `language` or the file name.
      report: filled with rows, skipped rows and unaligned rows.
      skip_bad_rows: skip malformed rows (recorded in `report.skipped`) instead of raising DataError.
      split: for JSONL, the partition to keep (`train`, `dev`, `test`, or an alias; None keeps all);
        a partition absent from the whole file raises FileNotFoundError after the file is read.
        For the other kinds, only the split named in ids (default: from the file name).
      kind: force `jsonl`/`raw`/`sp`/`conll` instead of detecting it.
    """
    report = report if report is not None else ReadReport()
    path = str(path)
    kind = kind or file_kind(path)
    if kind == "jsonl":
        return _read_jsonl(path, language, report, skip_bad_rows, split)
    if kind == "conll":
        return _read_conll(path, language, report, skip_bad_rows, split)
    if kind not in ("raw", "sp"):
        raise ValueError(f"unknown MASSIVE file kind {kind!r}; use jsonl, raw, sp or conll")
    return _read_columns(path, kind, language, report, skip_bad_rows, split)


def _read_columns(path, kind, language, report, skip_bad_rows, split) -> Iterator[Example]:
    split_name = _split_of(path, split)
    columns, row = (5, _raw_row) if kind == "raw" else (4, _sp_row)

    def parse_row(number: int, text: str) -> Example:
        err = lambda msg: DataError(path, number, msg)  # noqa: E731
        cols = split_columns(path, number, text, columns)
        lang, locale, ex = row(cols, err)
        _check_language(lang, language, locale, err)
        ex.id = f"{lang}/{split_name}:{number}"
        ex.source = f"{path}:{number}"
        report.count(ex)
        return ex

    yield from read_rows(path, parse_row, report, skip_bad_rows)


def _read_jsonl(path, language, report, skip_bad_rows, split) -> Iterator[Example]:
    wanted = canonical_split(split) if split else None
    seen = set()

    def parse_row(number: int, text: str) -> Optional[Example]:
        err = lambda msg: DataError(path, number, msg)  # noqa: E731
        try:
            data = json.loads(text)
        except ValueError as e:
            raise err(f"not valid JSON: {e}") from None
        partition, lang, locale, ex = _json_row(data, err)
        try:
            partition = canonical_split(partition)
        except ValueError:
            raise err(f"unknown partition {partition!r} (expected train, dev or test)") from None
        seen.add(partition)
        if wanted is not None and partition != wanted:
            return None
        _check_language(lang, language, locale, err)
        ex.source = f"{path}:{number}"
        report.count(ex)
        return ex

    yield from read_rows(path, parse_row, report, skip_bad_rows)
    if wanted is not None and wanted not in seen:
        raise FileNotFoundError(f"{path}: no rows of partition {wanted!r} (partitions present: "
                                f"{', '.join(sorted(seen)) or 'none'})")


def _read_conll(path, language, report, skip_bad_rows, split) -> Iterator[Example]:
    split_name = _split_of(path, split)
    m = _FOLDER_FILE_RE.match(os.path.basename(path))
    lang = iso_language(language or (m.group(2) if m else "und"))
    # One example spans several lines: collect them until a blank line.
    state = {"start": None, "rows": [], "bad": False}

    def finish() -> Optional[Example]:
        start, rows, bad = state["start"], state["rows"], state["bad"]
        state.update(start=None, rows=[], bad=False)
        if start is None or bad:
            return None
        tokens, tags, pos = [], [], 0
        for word, tag in rows:
            tokens.append((word, pos, pos + len(word)))
            tags.append(tag)
            pos += len(word) + 1
        ex = _example(f"{lang}/{split_name}:{start}", lang, " ".join(w for w, _ in rows), tokens,
                      "", tags, None, None)
        ex.source = f"{path}:{start}"
        report.count(ex)
        return ex

    def parse_row(number: int, text: str) -> Optional[Example]:
        if text == "":
            return finish()
        if state["start"] is None:
            state["start"] = number
        try:
            cols = split_columns(path, number, text, 2)
            word, tag = cols
            if not word or any(c.isspace() for c in word):
                raise DataError(path, number, f"token {word!r} is empty or holds whitespace")
            _check_tags([tag], lambda msg: DataError(path, number, msg))
        except DataError:
            state["bad"] = True  # the whole example goes with its bad line
            raise
        state["rows"].append((word, tag))
        return None

    yield from read_rows(path, parse_row, report, skip_bad_rows, skip_blank=False)
    last = finish()  # a file whose last example has no blank line after it
    if last is not None:
        yield last


# ---------------------------------------------------------------------------------------------
# Folders


def _jsonl_files(data_dir: str) -> dict:
    """`{iso code: [paths]}` of the official `<locale>.jsonl` files (zh-CN and zh-TW are both zh)."""
    out: dict = {}
    for folder in (data_dir, os.path.join(data_dir, "data")):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            m = _JSONL_RE.match(name)
            if not m or not os.path.isfile(os.path.join(folder, name)):
                continue
            try:
                lang = iso_language(m.group(1))
            except ValueError:
                continue
            out.setdefault(lang, []).append(os.path.join(folder, name))
        if out:
            break
    return out


def _folder_files(data_dir: str) -> dict:
    """`{iso code: {split on disk: {kind: path}}}` of the per-language folder layout."""
    out: dict = {}
    if not os.path.isdir(data_dir):
        return out
    for sub in sorted(os.listdir(data_dir)):
        folder = os.path.join(data_dir, sub)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            m = _FOLDER_FILE_RE.match(name)
            if not m:
                continue
            try:
                lang = iso_language(m.group(2))
            except ValueError:
                continue
            split_files = out.setdefault(lang, {}).setdefault(m.group(1).lower(), {})
            split_files[m.group(3)] = os.path.join(folder, name)
    return out


def available_languages(data_dir: str) -> List[str]:
    """ISO codes present in `data_dir`, in either layout; [] when it holds no MASSIVE files."""
    if not data_dir:
        return []
    return sorted(_jsonl_files(data_dir) or _folder_files(data_dir))


def read(data_dir: str, split: str, languages: Optional[Iterable[str] | str] = None,
         report: Optional[ReadReport] = None, skip_bad_rows: bool = False) -> Iterator[Example]:
    """Examples of `split` (`train`, `dev`, `test` or an alias) for `languages` (ISO codes; None =
    every language present) from `data_dir` in either layout, detected from the files present.

    Files are found before the first row is read: a missing language or split raises
    FileNotFoundError naming the path and what does exist. (A JSONL file without rows of the
    partition raises it once the file has been read.)
    """
    report = report if report is not None else ReadReport()
    wanted = parse_languages(languages)
    jsonl = _jsonl_files(data_dir)
    if jsonl:
        canonical_split(split)  # validates the name before anything is read
        missing = [lang for lang in (wanted or []) if lang not in jsonl]
        if missing:
            raise FileNotFoundError(
                f"{os.path.join(data_dir, missing[0] + '-*.jsonl')}: no MASSIVE file for language "
                f"{missing[0]}; locale files in {data_dir}: "
                f"{', '.join(os.path.basename(p) for ps in jsonl.values() for p in ps)}")
        files = [(lang, path, "jsonl") for lang in (wanted or sorted(jsonl)) for path in jsonl[lang]]
    else:
        folders = _folder_files(data_dir)
        present = "; ".join(f"{lang}: {', '.join(sorted(splits))}"
                            for lang, splits in folders.items()) or "none"
        files = []
        for lang in wanted or sorted(folders):
            by_split = folders.get(lang, {})
            found = next((by_split[name] for name in split_names(split) if name in by_split), None)
            if found is None:
                if wanted is None:
                    continue
                tried = os.path.join(data_dir, lang, f"{split_names(split)[0]}_{lang}_raw.txt")
                raise FileNotFoundError(f"{tried}: no MASSIVE file (nor _sp/_conll, nor split names "
                                        f"{', '.join(split_names(split))}); languages: splits in "
                                        f"{data_dir}: {present}")
            kind = next(k for k in KINDS if k in found)
            files.append((lang, found[kind], kind))
        if not files:
            raise FileNotFoundError(f"{data_dir}: no MASSIVE files of split {split!r} (expected "
                                    f"<locale>.jsonl or <lang>/<split>_<lang>_raw.txt); languages: "
                                    f"splits present: {present}")
    return _read_all(files, split, report, skip_bad_rows)


def _read_all(files, split, report, skip_bad_rows) -> Iterator[Example]:
    for lang, path, kind in files:
        yield from read_file(path, language=lang, report=report, skip_bad_rows=skip_bad_rows,
                             split=split if kind == "jsonl" else _split_of(path, None), kind=kind)
