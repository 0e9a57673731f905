// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MockUSDC} from "./MockUSDC.sol";

/// @notice MockUSDC that burns 1% of every transfer, so the payee receives less than `value`.
/// Used to show the escrow refuses fee-on-transfer tokens (its deposit is checked by balance delta).
contract FeeOnTransferUSDC is MockUSDC {
    /// @notice The fee, in basis points of the transferred amount.
    uint256 public constant FEE_BPS = 100;

    /// @dev Mints and burns are untouched; transfers deliver `value` minus the burnt fee.
    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = value * FEE_BPS / 10_000;
        super._update(from, to, value - fee);
        if (fee != 0) super._update(from, address(0), fee);
    }
}
