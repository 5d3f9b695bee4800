"""RFC 9162 (Certificate Transparency v2) Merkle trees over an epoch's receipt hashes: the tree head,
inclusion proofs and their verification. Stdlib only; leaves are the raw 32-byte receipt hashes."""

from __future__ import annotations

import hashlib


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]); the empty tree's hash is SHA-256 of nothing."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the sibling hashes from leaf `index` up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index outside the tree")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return inclusion_path(index, leaves[:k]) + [root(leaves[k:])]
    return inclusion_path(index - k, leaves[k:]) + [root(leaves[:k])]


class Tree:
    """Every level of a tree, built once (bottom-up, an odd last node moves up unchanged: the same tree as MTH),
    so each inclusion path after that is log2(n) lookups instead of rehashing the epoch."""

    def __init__(self, leaves: list[bytes]):
        level = [leaf_hash(leaf) for leaf in leaves]
        self.size, self.levels = len(leaves), [level]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
            self.levels.append(level)

    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else hashlib.sha256(b"").digest()

    def path(self, index: int) -> list[bytes]:
        if not 0 <= index < self.size:
            raise IndexError("leaf index outside the tree")
        out = []
        for level in self.levels[:-1]:
            if index ^ 1 < len(level):
                out.append(level[index ^ 1])
            index >>= 1
        return out


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], expected_root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does `leaf` sit at `index` of the tree of `size` leaves with this root?"""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root
