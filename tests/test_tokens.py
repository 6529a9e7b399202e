"""Token counts and cuts behind the /v1 ``usage`` and ``max_tokens`` (rag/tokens.py)."""

from __future__ import annotations

import pytest

from rag.schema import MARKER_RE, Citation
from rag.tokens import WordTokenizer, cited, count, cut, tokenizer_of

WORDS = WordTokenizer()
KK = "Бірінші сөйлем мұнда [1] Екінші сөйлем одан ұзағырақ жазылған [2] Үшінші [3]"
EN = "The documents (in Kazakh) say:\n- «First one» [1]\n- «Second sentence here» [2]"


def _citation(n: int) -> Citation:
    return Citation(n, "d.txt", "D", f"c{n}", n * 10, n * 10 + 5, f"quote {n}")


def test_word_tokenizer_counts_words_and_signs() -> None:
    assert count(WORDS, "Сөз, тағы сөз [1].") == 8  # Сөз , тағы сөз [ 1 ] .
    assert count(WORDS, "") == 0


def test_a_text_that_fits_is_kept_whole() -> None:
    assert cut(WORDS, KK, count(WORDS, KK)) == KK


@pytest.mark.parametrize("limit", range(6, 21))
def test_cut_keeps_whole_sentences_within_the_limit(limit: int) -> None:
    kept = cut(WORDS, KK, limit)
    assert count(WORDS, kept) <= limit
    assert KK.startswith(kept)
    # The cut falls right after a marker: whole sentences, each with its citation.
    assert kept.endswith(("[1]", "[2]", "[3]"))
    # ... and it is the longest such prefix.
    ends = [m.end() for m in MARKER_RE.finditer(KK)]
    fitting = [e for e in ends if count(WORDS, KK[:e]) <= limit]
    assert len(kept) == max(fitting)


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5])
def test_cut_inside_the_first_sentence_is_at_a_token_and_drops_half_markers(limit: int) -> None:
    kept = cut(WORDS, KK, limit)
    assert count(WORDS, kept) <= limit
    assert KK.startswith(kept) and kept
    assert not kept.endswith("[") and not kept.rstrip("0123456789").endswith("[")


def test_cut_of_a_bullet_list_keeps_whole_lines() -> None:
    kept = cut(WORDS, EN, count(WORDS, EN) - 1)
    assert kept == "The documents (in Kazakh) say:\n- «First one» [1]"


def test_cited_keeps_the_citations_of_the_markers_left() -> None:
    citations = [_citation(1), _citation(2), _citation(3)]
    assert cited("Бір [1] екі [3]", citations) == (citations[0], citations[2])
    assert cited("маркерсіз", citations) == ()


def test_max_tokens_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        cut(WORDS, KK, 0)


def test_tokenizer_of_prefers_the_embedders_own() -> None:
    class WithTokenizer:
        def token_spans(self, text: str) -> list[tuple[int, int]]:
            return [(i, i + 1) for i in range(len(text))]  # one token per character

    own = tokenizer_of(WithTokenizer())
    assert count(own, "абв") == 3
    assert isinstance(tokenizer_of(object()), WordTokenizer)


@pytest.mark.model
def test_the_embedding_models_tokenizer_counts_and_cuts() -> None:
    """The real tokenizer (XLM-R sentencepiece of multilingual-e5-small): counts equal its
    input ids without special tokens, spans point into the text, and cuts respect the limit."""
    from rag.embedding import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder()
    tok = tokenizer_of(emb)
    ids = emb.model.tokenizer(KK, add_special_tokens=False)["input_ids"]
    assert count(tok, KK) == len(ids)
    spans = emb.token_spans(KK)
    assert all(0 <= a <= b <= len(KK) for a, b in spans)
    for limit in (3, 8, 15):
        kept = cut(tok, KK, limit)
        assert kept and KK.startswith(kept)
        assert count(tok, kept) <= limit
