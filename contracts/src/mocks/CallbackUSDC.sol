// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MockUSDC} from "./MockUSDC.sol";

/// @notice Receives a call on every transfer to or from itself (an ERC-777-like callback).
interface ITokenTransferHook {
    /// @notice Called by the token after a balance move to or from the hook.
    function onTokenTransfer(address from, address to, uint256 amount) external;
}

/// @notice MockUSDC that calls a registered hook after every transfer to or from the hook's
/// address: a token with a callback, used to attempt reentrancy into the escrow.
contract CallbackUSDC is MockUSDC {
    /// @notice The registered hook; zero when none.
    address public hook;

    /// @notice Registers `hook_` (zero to clear). Owner only.
    function setHook(address hook_) external {
        if (msg.sender != owner) revert OnlyOwner();
        hook = hook_;
    }

    /// @dev Moves the balance first, then calls the hook when it is a party to a transfer
    /// (mints and burns do not call it). A revert in the hook reverts the transfer.
    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        address h = hook;
        if (h == address(0) || from == address(0) || to == address(0)) return;
        if (from == h || to == h) ITokenTransferHook(h).onTokenTransfer(from, to, value);
    }
}
