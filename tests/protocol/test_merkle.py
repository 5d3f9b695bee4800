"""RFC 9162 Merkle trees: every leaf's proof verifies, and any change to leaf, index, size, path or root fails."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.protocol import merkle


def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(str(i).encode()).digest() for i in range(n)]


def test_known_shapes():
    a, b, c = leaves(3)
    assert merkle.root([a]) == merkle.leaf_hash(a)
    assert merkle.root([a, b, c]) == merkle.node_hash(merkle.node_hash(merkle.leaf_hash(a), merkle.leaf_hash(b)), merkle.leaf_hash(c))
    assert merkle.inclusion_path(2, [a, b, c]) == [merkle.node_hash(merkle.leaf_hash(a), merkle.leaf_hash(b))]
    assert merkle.root([]) == hashlib.sha256(b"").digest()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_every_proof_verifies_and_tampering_fails(n, data):
    tree = leaves(n)
    head = merkle.root(tree)
    i = data.draw(st.integers(0, n - 1))
    path = merkle.inclusion_path(i, tree)
    assert merkle.verify_inclusion(i, n, tree[i], path, head)
    assert not merkle.verify_inclusion(i, n, hashlib.sha256(b"other").digest(), path, head)
    assert not merkle.verify_inclusion(i, n, tree[i], path, hashlib.sha256(b"root").digest())
    if n > 1:
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        assert not merkle.verify_inclusion(j, n, tree[i], path, head)
        assert not merkle.verify_inclusion(i, n, tree[i], path[:-1], head)
