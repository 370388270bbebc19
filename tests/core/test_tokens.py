"""probe.core.tokens: readable token text, special / unused tokens, frequency ranks."""

from __future__ import annotations

from probe.core.tokens import SPACE_MARK, display_token, frequency_ranks, surface_form


def test_display_token__markers_made_explicit():
    assert display_token("##ing", "##ing") == "##ing"
    assert display_token("Ġthe", " the") == SPACE_MARK + "the"
    assert display_token("▁the", " the") == SPACE_MARK + "the"
    assert display_token("Ċ", "\n") == "\\n"
    assert display_token("Ġ", " ") == SPACE_MARK
    assert display_token("Ä", "\ufffd") == "\\xc4"


def test_surface_form__strips_markers():
    assert surface_form("##ing") == "ing"
    assert surface_form("ĠThe") == "the"
    assert surface_form("▁Science") == "science"


def test_vocabulary__default_masks(default_model):
    vocab = default_model.vocabulary
    tok = default_model.tokenizer
    assert vocab.special[tok.cls_token_id] and vocab.special[tok.pad_token_id]
    assert vocab.unused[tok.convert_tokens_to_ids("[unused5]")]
    assert not vocab.unused[tok.convert_tokens_to_ids("science")]
    assert vocab.unused.sum() == 994  # BERT uncased reserves [unused0] .. [unused993]


def test_frequency_ranks__common_words_first(default_model):
    ranks = frequency_ranks(default_model.vocabulary, ~default_model.vocabulary.special)
    top = [default_model.vocabulary.pieces[i] for i in ranks[:10]]
    assert "the" in top and "of" in top
    science = default_model.tokenizer.convert_tokens_to_ids("science")
    assert science in ranks[:5000]
    assert default_model.tokenizer.convert_tokens_to_ids("[unused5]") not in ranks
