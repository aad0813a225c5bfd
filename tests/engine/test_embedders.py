import shutil

import numpy as np
import pytest

from routellm_base import CheckpointError, EmbedderMismatchError
from routellm_base.embedders import BUNDLED_EMBEDDERS_DIR, StaticEmbedder, load_embedder

BUNDLED = BUNDLED_EMBEDDERS_DIR / "minilm-l6-static-256"
TEXTS = ["What is 2+2?", "Write a haiku about autumn leaves.", "ünïcödé ✨ text", "long prompt " * 5000, ""]


def test_static_embeddings_match_model2vec():
    model2vec = pytest.importorskip("model2vec")
    reference = model2vec.StaticModel.from_pretrained(str(BUNDLED)).encode(TEXTS)
    ours = StaticEmbedder(BUNDLED).embed(TEXTS)
    # The table is stored in float16; we upcast to float32 before averaging.
    np.testing.assert_allclose(ours, reference, atol=1e-3)


def test_rows_are_unit_norm_or_zero():
    vectors = load_embedder("minilm-l6-static-256").embed(TEXTS)
    norms = np.linalg.norm(vectors, axis=1)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 256)
    np.testing.assert_allclose(norms[:4], 1.0, atol=1e-5)
    assert norms[4] == 0.0  # the empty string has no tokens


def test_similar_texts_are_closer_than_unrelated_ones():
    a, b, c = load_embedder("minilm-l6-static-256").embed(
        ["How do I sort a list in Python?", "Sorting a Python list: how?", "Best hiking trails in Norway"]
    )
    assert a @ b > a @ c + 0.2


def test_cache_is_bounded_and_counts_hits():
    embedder = StaticEmbedder(BUNDLED, cache_size=2)
    first = embedder.embed(["a", "b"])
    again = embedder.embed(["a", "b", "a"])
    np.testing.assert_array_equal(first, again[:2])
    assert embedder.cache_hits == 3 and embedder.cache_misses == 2
    embedder.embed(["c"])  # "a" was used last, so "b" is the one evicted
    assert list(embedder._cache) == ["a", "c"]


def test_tampered_table_is_refused(tmp_path):
    copy = tmp_path / "emb"
    shutil.copytree(BUNDLED, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    from routellm_base.embedders import BUNDLED_STATIC_SHA256

    with pytest.raises(CheckpointError, match="sha256"):
        StaticEmbedder(copy, sha256=BUNDLED_STATIC_SHA256["minilm-l6-static-256"])


def test_incomplete_folder_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        (tmp_path / "model.safetensors").write_bytes(b"")
        (tmp_path / "config.json").write_text("{}")
        StaticEmbedder(tmp_path)


def test_identity_mismatch_names_both_embedders():
    embedder = load_embedder("minilm-l6-static-256")
    with pytest.raises(EmbedderMismatchError, match="sentence_transformer:all-MiniLM-L6-v2.*static:minilm-l6-static-256"):
        embedder.check_matches({"type": "sentence_transformer", "name": "all-MiniLM-L6-v2", "dim": 384}, "ckpt")


def test_unknown_embedder_spec():
    with pytest.raises(CheckpointError, match="unknown embedder"):
        load_embedder("word2vec")


def test_sentence_transformer_minilm_from_verified_package():
    pytest.importorskip("sentence_transformers")
    embedder = load_embedder("sentence_transformer")
    vectors = embedder.embed(["How do I sort a list in Python?", "Sorting a Python list: how?", "Hiking in Norway"])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


class FakeOpenAIEmbeddings:
    """Stands in for openai.OpenAI().embeddings: records requests, returns fixed vectors."""

    def __init__(self):
        self.requests = []

    def create(self, model, input):
        from types import SimpleNamespace

        self.requests.append((model, list(input)))
        vectors = [[float(len(text)), 1.0] + [0.0] * 1534 for text in input]
        return SimpleNamespace(data=[SimpleNamespace(embedding=v) for v in vectors])


def test_openai_embedder_batches_normalises_and_caches():
    from types import SimpleNamespace

    from routellm_base.embedders.openai import OpenAIEmbedder

    fake = FakeOpenAIEmbeddings()
    embedder = OpenAIEmbedder(client=SimpleNamespace(embeddings=fake))
    assert embedder.identity == {"type": "openai", "name": "text-embedding-3-small", "dim": 1536}
    vectors = embedder.embed(["abc", "abc", "a"])
    assert fake.requests == [("text-embedding-3-small", ["abc", "a"])]  # duplicates sent once
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    embedder.embed(["a"])
    assert len(fake.requests) == 1  # served from the cache, nothing sent
    with pytest.raises(ValueError, match="unknown OpenAI embedding model"):
        OpenAIEmbedder(model="text-embedding-9", client=SimpleNamespace(embeddings=fake))
