# pragma version 0.4.3
# @title ONE epoch anchor
# @notice The coordinator writes each settlement epoch's Merkle root (RFC 9162, over the epoch's receipt
#         hashes) here once; anyone checks an inclusion proof against the root stored on chain.

owner: public(address)
roots: public(HashMap[uint256, bytes32])
sizes: public(HashMap[uint256, uint256])

event Anchored:
    epoch: indexed(uint256)
    root: bytes32
    size: uint256


@deploy
def __init__():
    self.owner = msg.sender


@external
def anchor(_epoch: uint256, _root: bytes32, _size: uint256):
    assert msg.sender == self.owner, "only the coordinator anchors"
    assert self.roots[_epoch] == empty(bytes32), "epoch already anchored"
    self.roots[_epoch] = _root
    self.sizes[_epoch] = _size
    log Anchored(epoch=_epoch, root=_root, size=_size)
