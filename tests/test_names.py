"""Tests for prado_tiny.data.names."""
import pytest

from prado_tiny.data.names import canonical_split, iso_language, parse_languages, split_names


def test_languages_map_to_iso():
    assert [iso_language(c) for c in ("EN", "en_XX", "en-US", "de")] == ["en", "en", "en", "de"]
    assert parse_languages("en, DE,en-US") == ["en", "de"]
    assert parse_languages("") is None and parse_languages(None) is None
    with pytest.raises(ValueError, match="not a language code"):
        iso_language("english!")


def test_split_aliases():
    assert canonical_split("eval") == canonical_split("valid") == "dev"
    assert split_names("eval")[0] == "eval" and "dev" in split_names("eval")
    with pytest.raises(ValueError, match="unknown split"):
        canonical_split("holdout")
