"""The browser worker's pure-Python WordPiece gives the same ids as the tokenizer sentence-transformers uses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from browser_worker.wordpiece import WordPiece

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Héllo, Wörld! Ça va? naïve café — déjà vu",
    "GPU-accelerated inference: 3.5x faster (p50=12ms) vs. baseline!!!",
    "東京は日本の首都です。 中文测试",
    "emoji 🚀🔥 and tabs\tand\nnewlines",
    "ΑΣ ΟΔΟΣ aΣ",  # final sigma: lower-cased per character
    "unbelievably antidisestablishmentarianism supercalifragilisticexpialidocious",
    "",
    "a " * 400,
]


@pytest.fixture(scope="module")
def tokenizers():
    from transformers import AutoTokenizer

    from gpu_worker.engines.embeddings import minilm_path

    path = minilm_path()
    return WordPiece((path / "vocab.txt").read_text(encoding="utf-8")), AutoTokenizer.from_pretrained(str(path))


def reference(hf, text: str) -> list[int]:
    return hf(text, truncation=True, max_length=256)["input_ids"]


@pytest.mark.parametrize("text", SENTENCES)
def test_same_ids_as_the_reference_tokenizer(tokenizers, text):
    ours, hf = tokenizers
    assert ours.encode(text) == reference(hf, text)


# Latin, Greek, Cyrillic, punctuation, CJK and emoji: characters whose Unicode properties have not changed
# between the Unicode version of Python's unicodedata and that of the Rust `tokenizers` crate (characters
# added in Unicode 13+ are classified differently by the two and are left out).
STABLE = st.one_of(st.characters(max_codepoint=0x52F, exclude_categories=("Cs",)), st.characters(min_codepoint=0x2000, max_codepoint=0x206F),
                   st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), st.characters(min_codepoint=0x1F300, max_codepoint=0x1F5FF))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(text=st.text(STABLE, max_size=80))
def test_same_ids_on_random_text(tokenizers, text):
    ours, hf = tokenizers
    assert ours.encode(text) == reference(hf, text)
