"""Reader for MTOP (Li et al., 2021) in its two published serialisations, detected per file.

Layout: `<data_dir>/<lang>/<split>.txt` (`en/train.txt`, `de/eval.txt`, `th/test.txt`).

**Official 8 columns**: id, intent (`IN:CREATE_CALL`), slot character spans
(`5:13:SL:CONTACT,18:25:SL:CONTACT`, empty when there are none), utterance, domain, locale
(`en_XX`), decoupled parse, and the tokens JSON `{"tokens": [...], "tokenSpans": [{"start",
"length"}, ...]}`. The dataset's own tokens and spans are used as they are; slot spans are
placed on them (a token is only split if a slot boundary fell inside it, which the published
English file never does).

**5-column flat form** (as re-serialised by CoF-CoT): utterance, flat parse, decoupled parse,
domain, locale. The flat parse lists the slots of the official slot column as text
(`[IN:X [SL:Y words ] ]`), so it, not the decoupled parse's top level, is what gives the same BIO
tags as the official file (a nested slot's official span also covers connecting words that the
decoupled parse drops, `with my mom` over `[SL:TODO [IN:GET_TODO [SL:ATTENDEE ... my mom ...`).
Tokens come from `tokenizer.tokenize`, slot text is placed by `align.locate_slots` (whitespace and
case insensitive, so Thai's space-tokenised slot text finds its unsegmented utterance text), tokens
are split where a slot boundary falls inside one, and tags come from `align.place_spans`.

Labels drop their `IN:`/`SL:` prefixes (`intent="CREATE_CALL"`, tags `B-CONTACT`), in both
serialisations, so that both give identical examples; `Example.parse` keeps the decoupled parse
as written.

A slot that cannot be placed (the flat parse of some rows repeats a slot, or lists a slot inside
another: `TODO der Besetzung heute Abend ...` and `DATE_TIME heute Abend`) leaves its tokens `O`
and sets `Example.unaligned` to `reason_code: details`; the row is still yielded. In the published
CoF-CoT train and eval files that is 163 of 84,808 rows, none of them English: `overlapping_slots`
(142: the slot's only occurrence lies inside another slot, as translated annotations sometimes put
two slots on the same words) and `duplicate_slot` (21: a slot listed more often than its text
occurs). BIO tags cannot hold two slots on one token, so the first placed keeps it. Malformed rows
(column count, brackets, spans outside the utterance, bad tokens JSON, empty utterance, ...) raise
DataError naming `file:line`, or are skipped and counted with `skip_bad_rows`.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Iterator, List, Optional

from prado_tiny.data.align import place_spans, split_at_boundaries
from prado_tiny.data.example import DataError, Example, ReadReport
from prado_tiny.data.lines import read_rows, split_columns
from prado_tiny.data.names import SPLIT_ALIASES, iso_language, parse_languages, split_names
from prado_tiny.data.parse import ParseError, flat_frame, flat_to_bio, parse_tree

OFFICIAL_COLUMNS = 8
FLAT_COLUMNS = 5
_SPLIT_FILES = tuple(sorted({name for names in SPLIT_ALIASES.values() for name in names}))


def _strip_prefix(label: str, prefix: str) -> str:
    return label[len(prefix):] if label.startswith(prefix) else label


def read_mtop_file(path: str, language: Optional[str] = None, report: Optional[ReadReport] = None,
                   skip_bad_rows: bool = False) -> Iterator[Example]:
    """Yields the examples of one MTOP file, 8-column or 5-column (detected from its first row).

    Args:
      path: the file.
      language: ISO code the rows must have (their locale column is checked against it); None
        takes each row's language from its locale column.
      report: filled with rows, skipped rows and unaligned rows.
      skip_bad_rows: skip malformed rows (recorded in `report.skipped`) instead of raising DataError.
    """
    report = report if report is not None else ReadReport()
    path = str(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    # The first row with 5 or 8 columns fixes the format; later rows must agree.
    state = {"columns": None}

    def parse_row(number: int, text: str) -> Example:
        err = lambda msg: DataError(path, number, msg)  # noqa: E731
        if state["columns"] is None:
            cols = split_columns(path, number, text, (OFFICIAL_COLUMNS, FLAT_COLUMNS))
            state["columns"] = len(cols)
        else:
            cols = text.split("\t")
            if len(cols) != state["columns"]:
                fmt = "official 8-column" if state["columns"] == OFFICIAL_COLUMNS else "5-column flat"
                raise err(f"expected {state['columns']} tab-separated columns ({fmt} format, as the file's "
                          f"first row), found {len(cols)}")
        if len(cols) == OFFICIAL_COLUMNS:
            ex = _official_row(cols, err)
        else:
            ex = _flat_row(cols, err)
        if language is not None and ex.language != iso_language(language):
            raise err(f"locale {cols[5 if len(cols) == OFFICIAL_COLUMNS else 4]!r} is not language "
                      f"{language!r} of this file")
        if len(cols) == FLAT_COLUMNS:
            ex.id = f"{ex.language}/{stem}:{number}"
        ex.source = f"{path}:{number}"
        report.count(ex)
        return ex

    yield from read_rows(path, parse_row, report, skip_bad_rows)


def _language(locale: str, err) -> str:
    try:
        return iso_language(locale)
    except ValueError:
        raise err(f"bad locale column {locale!r} (expected e.g. en_XX)") from None


def _tree(parse: str, what: str, err):
    try:
        return parse_tree(parse)
    except ParseError as e:
        raise err(f"malformed {what}: {e.message}: {parse!r}") from None


def _check_utterance(utterance: str, err) -> None:
    if not utterance.strip():
        raise err("empty utterance")


def _official_row(cols: List[str], err) -> Example:
    """One row of the official 8-column file."""
    ex_id, intent, slot_col, utterance, domain, locale, parse, tokens_json = cols
    _check_utterance(utterance, err)
    lang = _language(locale, err)
    tree = _tree(parse, "decoupled parse (column 7)", err)
    intent = _strip_prefix(intent.strip(), "IN:")
    if not intent:
        raise err("empty intent (column 2)")
    if intent != tree.label:
        raise err(f"intent column {cols[1]!r} disagrees with the parse's root IN:{tree.label}")
    tokens = _official_tokens(tokens_json, utterance, err)
    spans = _official_spans(slot_col, utterance, err)
    tokens = split_at_boundaries(utterance, tokens, spans)
    tags, problems = place_spans(tokens, sorted(spans, key=lambda s: (s[1], s[2])))
    return Example(id=ex_id, language=lang, utterance=utterance, tokens=[t for t, _, _ in tokens],
                   offsets=[(s, e) for _, s, e in tokens], intent=intent, slots=tags, parse=parse,
                   domain=domain, unaligned="; ".join(problems) or None)


def _official_tokens(tokens_json: str, utterance: str, err) -> list:
    """`(token, start, end)` from the tokens JSON, each checked against the utterance."""
    try:
        data = json.loads(tokens_json)
    except ValueError as e:
        raise err(f"tokens column (8) is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tokens"), list) \
            or not isinstance(data.get("tokenSpans"), list):
        raise err('tokens column (8) must be {"tokens": [...], "tokenSpans": [...]}')
    words, spans = data["tokens"], data["tokenSpans"]
    if len(words) != len(spans):
        raise err(f"token/tokenSpan mismatch: {len(words)} tokens but {len(spans)} tokenSpans")
    if not words:
        raise err("tokens column (8) holds no tokens")
    out, previous_end = [], 0
    for i, (word, span) in enumerate(zip(words, spans)):
        try:
            start, length = int(span["start"]), int(span["length"])
        except (TypeError, KeyError, ValueError):
            raise err(f"tokenSpans[{i}] is not {{\"start\": int, \"length\": int}}: {span!r}") from None
        end = start + length
        if start < previous_end or length <= 0 or end > len(utterance):
            raise err(f"tokenSpans[{i}] [{start}:{end}] is outside the utterance (length "
                      f"{len(utterance)}), empty or overlaps the previous token")
        if utterance[start:end] != word:
            raise err(f"token/tokenSpan mismatch: token {i} is {word!r} but the utterance has "
                      f"{utterance[start:end]!r} at [{start}:{end}]")
        out.append((word, start, end))
        previous_end = end
    return out


def _official_spans(slot_col: str, utterance: str, err) -> list:
    """`[(type, start, end)]` from `start:end:SL:NAME,...`, each checked to lie in the utterance."""
    spans = []
    for item in filter(None, (s.strip() for s in slot_col.split(","))):
        parts = item.split(":", 2)
        try:
            start, end, label = int(parts[0]), int(parts[1]), parts[2]
        except (IndexError, ValueError):
            raise err(f"bad slot span {item!r} (expected start:end:SL:NAME)") from None
        label = _strip_prefix(label, "SL:")
        if not label:
            raise err(f"slot span {item!r} has an empty slot name")
        if not 0 <= start < end <= len(utterance):
            raise err(f"slot span {item!r} is outside the utterance (length {len(utterance)})")
        spans.append((label, start, end))
    return spans




def _flat_row(cols: List[str], err) -> Example:
    """One row of the 5-column flat file; the id is set by the caller."""
    utterance, flat, parse, domain, locale = cols
    _check_utterance(utterance, err)
    lang = _language(locale, err)
    flat_tree = _tree(flat, "flat parse (column 2)", err)
    tree = _tree(parse, "decoupled parse (column 3)", err)
    if flat_tree.label != tree.label:
        raise err(f"flat parse intent IN:{flat_tree.label} disagrees with the decoupled parse's "
                  f"IN:{tree.label}")
    intent, slots = flat_frame(flat_tree)
    tokens, tags, problems = flat_to_bio(utterance, slots)
    return Example(id="", language=lang, utterance=utterance, tokens=[t for t, _, _ in tokens],
                   offsets=[(s, e) for _, s, e in tokens], intent=intent, slots=tags, parse=parse,
                   domain=domain, unaligned="; ".join(problems) or None)


def _language_dirs(data_dir: str) -> dict:
    """`{iso code: folder}` for the language folders of `data_dir` holding a `<split>.txt`."""
    out = {}
    if not data_dir or not os.path.isdir(data_dir):
        return out
    for name in sorted(os.listdir(data_dir)):
        folder = os.path.join(data_dir, name)
        if not os.path.isdir(folder):
            continue
        try:
            lang = iso_language(name)
        except ValueError:
            continue
        if any(os.path.isfile(os.path.join(folder, s + ".txt")) for s in _SPLIT_FILES):
            out.setdefault(lang, folder)
    return out


def available_languages(data_dir: str) -> List[str]:
    """ISO codes of the language folders in `data_dir` that hold at least one `<split>.txt`."""
    return sorted(_language_dirs(data_dir))


def _splits_in(folder: str) -> List[str]:
    return sorted(os.path.splitext(n)[0] for n in os.listdir(folder)
                  if n.endswith(".txt") and os.path.splitext(n)[0] in _SPLIT_FILES)


def _split_file(folder: str, split: str) -> Optional[str]:
    for name in split_names(split):
        path = os.path.join(folder, name + ".txt")
        if os.path.isfile(path):
            return path
    return None


def read(data_dir: str, split: str, languages: Optional[Iterable[str] | str] = None,
         report: Optional[ReadReport] = None, skip_bad_rows: bool = False) -> Iterator[Example]:
    """Examples of `split` (`train`, `dev`/`eval`, `test`) for `languages` (ISO codes; None = every
    language folder that has the split), from `<data_dir>/<lang>/<split>.txt`, in language order.

    Files are found before the first row is read: a missing one raises FileNotFoundError naming
    the path and the languages and splits that do exist.
    """
    report = report if report is not None else ReadReport()
    dirs = _language_dirs(data_dir)
    wanted = parse_languages(languages)
    present = ", ".join(f"{lang} ({', '.join(_splits_in(folder))})" for lang, folder in dirs.items())
    present = present or "none"
    files = []
    for lang in wanted or sorted(dirs):
        folder = dirs.get(lang)
        path = _split_file(folder, split) if folder else None
        if path is None:
            if wanted is None:
                continue  # every language: those without this split are not asked for
            tried = os.path.join(data_dir, lang, split_names(split)[0] + ".txt")
            raise FileNotFoundError(f"{tried}: no such MTOP file (tried {', '.join(split_names(split))}); "
                                    f"languages (splits) in {data_dir}: {present}")
        files.append((lang, path))
    if not files:
        raise FileNotFoundError(f"{data_dir}: no language folder holds split {split!r} (tried "
                                f"{', '.join(n + '.txt' for n in split_names(split))}); "
                                f"languages (splits) present: {present}")
    return _read_files(files, report, skip_bad_rows)


def _read_files(files, report, skip_bad_rows) -> Iterator[Example]:
    for lang, path in files:
        yield from read_mtop_file(path, language=lang, report=report, skip_bad_rows=skip_bad_rows)
