"""The cached epoch tree (merkle.Tree) gives the same root and inclusion paths as RFC 9162's recursive MTH."""

from __future__ import annotations

import hashlib

from backend.protocol import merkle


def test_levels_tree_matches_the_recursive_definition_for_every_size():
    for size in range(0, 70):
        leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(size)]
        tree = merkle.Tree(leaves)
        assert tree.root() == merkle.root(leaves)
        for index in range(size):
            path = tree.path(index)
            assert path == merkle.inclusion_path(index, leaves)
            assert merkle.verify_inclusion(index, size, leaves[index], path, tree.root())
