# pragma version 0.4.3
# @title ONE/USDC constant-product pool
# @notice x * y = k with a fee on the amount in, for trading agents on the dev chain. The owner seeds it with
#         liquidity (no LP shares: a dev pool); anyone swaps with a minimum out, so a price that moved between
#         a quote and the swap reverts instead of filling badly. Reserves are tracked, not read from balances,
#         so tokens sent here directly change nothing.

from ethereum.ercs import IERC20

one: public(IERC20)
usdc: public(IERC20)
reserve_one: public(uint256)
reserve_usdc: public(uint256)
fee_bps: public(uint256)
owner: public(address)

BPS: constant(uint256) = 10000

event Swap:
    trader: indexed(address)
    token_in: indexed(address)
    amount_in: uint256
    amount_out: uint256

event Liquidity:
    amount_one: uint256
    amount_usdc: uint256


@deploy
def __init__(_one: address, _usdc: address, _fee_bps: uint256):
    assert _one != _usdc, "two different tokens"
    assert _fee_bps < BPS, "fee under 100%"
    self.one = IERC20(_one)
    self.usdc = IERC20(_usdc)
    self.fee_bps = _fee_bps
    self.owner = msg.sender


@external
def add_liquidity(_amount_one: uint256, _amount_usdc: uint256):
    assert msg.sender == self.owner, "only the owner adds liquidity"
    assert extcall self.one.transferFrom(msg.sender, self, _amount_one)
    assert extcall self.usdc.transferFrom(msg.sender, self, _amount_usdc)
    self.reserve_one += _amount_one
    self.reserve_usdc += _amount_usdc
    log Liquidity(amount_one=_amount_one, amount_usdc=_amount_usdc)


@internal
@view
def _amount_out(_amount_in: uint256, _reserve_in: uint256, _reserve_out: uint256) -> uint256:
    with_fee: uint256 = _amount_in * (BPS - self.fee_bps)
    return with_fee * _reserve_out // (_reserve_in * BPS + with_fee)


@external
@view
def amount_out(_token_in: address, _amount_in: uint256) -> uint256:
    if _token_in == self.one.address:
        return self._amount_out(_amount_in, self.reserve_one, self.reserve_usdc)
    assert _token_in == self.usdc.address, "not a token of this pool"
    return self._amount_out(_amount_in, self.reserve_usdc, self.reserve_one)


@external
def swap(_token_in: address, _amount_in: uint256, _min_out: uint256) -> uint256:
    assert _amount_in > 0, "nothing to swap"
    sell_one: bool = _token_in == self.one.address
    assert sell_one or _token_in == self.usdc.address, "not a token of this pool"
    out: uint256 = 0
    if sell_one:
        out = self._amount_out(_amount_in, self.reserve_one, self.reserve_usdc)
    else:
        out = self._amount_out(_amount_in, self.reserve_usdc, self.reserve_one)
    assert out > 0, "amount too small"
    assert out >= _min_out, "price moved: less out than min_out"
    if sell_one:
        assert extcall self.one.transferFrom(msg.sender, self, _amount_in)
        assert extcall self.usdc.transfer(msg.sender, out)
        self.reserve_one += _amount_in
        self.reserve_usdc -= out
    else:
        assert extcall self.usdc.transferFrom(msg.sender, self, _amount_in)
        assert extcall self.one.transfer(msg.sender, out)
        self.reserve_usdc += _amount_in
        self.reserve_one -= out
    log Swap(trader=msg.sender, token_in=_token_in, amount_in=_amount_in, amount_out=out)
    return out
