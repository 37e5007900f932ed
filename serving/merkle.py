"""RFC 6962 Merkle trees (Certificate Transparency): leaf = SHA-256(0x00 || data), node =
SHA-256(0x01 || left || right), the split at the largest power of two below n. Pure code."""

from __future__ import annotations

import hashlib


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root(leaves: list[bytes]) -> bytes:
    """MTH over leaf hashes (already hashed with leaf_hash)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # Iterative form of MTH: pair up left to right; an odd last node is carried up unchanged,
    # which yields exactly the RFC's split at the largest power of two.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(index: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1."""
    n = len(leaves)
    if not 0 <= index < n:
        raise IndexError(index)
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return inclusion_proof(index, leaves[:k]) + [root(leaves[k:])]
    return inclusion_proof(index - k, leaves[k:]) + [root(leaves[:k])]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], expected_root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2 verification of an inclusion proof."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


# A stored tree: every level of the iterative construction above (leaves first, the root last),
# each hash HASH_SIZE bytes, packed end to end. A node with no sibling at its level is the
# carried last node, so PATH(m, D[n]) is the sibling at each level that has one, leaf side first.
HASH_SIZE = 32


def level_sizes(size: int) -> list[int]:
    """How many nodes each level of a tree over `size` leaves holds, leaves first."""
    sizes = [size]
    while sizes[-1] > 1:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def tree_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree (the same pairing as root()); levels[-1] == [root(leaves)]."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
    return levels


def pack_levels(levels: list[list[bytes]]) -> bytes:
    return b"".join(b"".join(level) for level in levels)


def path_offsets(index: int, size: int) -> list[int]:
    """Byte offsets, in a packed tree over `size` leaves, of the hashes of PATH(index, D[size]) in
    the order inclusion_proof() gives them: at most ceil(log2(size)) of them."""
    if not 0 <= index < size:
        raise IndexError(index)
    offsets, base = [], 0
    for count in level_sizes(size)[:-1]:
        sibling = index ^ 1
        if sibling < count:
            offsets.append((base + sibling) * HASH_SIZE)
        base += count
        index >>= 1
    return offsets
