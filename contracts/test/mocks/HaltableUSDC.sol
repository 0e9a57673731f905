// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MockUSDC} from "../../src/mocks/MockUSDC.sol";

/// @notice Test-only MockUSDC whose every balance move can be halted, as real USDC's `pause` does:
/// used to show that `sellerClaimBatch` skips claims it cannot pay instead of reverting.
/// @dev Kept apart from MockUSDC (and named apart from a pause flag MockUSDC may grow) so that it
/// only adds a switch. Anyone may flip it: it is a test stand-in, never deployed.
contract HaltableUSDC is MockUSDC {
    /// @notice While true, every transfer, mint and burn reverts.
    bool public halted;

    /// @notice A balance move was attempted while the token is halted.
    error TokenHalted();

    /// @notice Halts (true) or resumes (false) every balance move.
    function setHalted(bool halted_) external {
        halted = halted_;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (halted) revert TokenHalted();
        super._update(from, to, value);
    }
}
