// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ISanctionsOracle} from "../interfaces/ISanctionsOracle.sol";

/// @notice A test stand-in for the Chainalysis sanctions oracle: the deployer manages the list,
/// and can make every lookup revert to show that callers fail closed.
contract MockSanctionsOracle is ISanctionsOracle {
    /// @notice The deployer; the only address allowed to change the list or the mode.
    address public immutable owner;

    /// @notice When true, `isSanctioned` reverts with `OracleDown`.
    bool public reverting;

    mapping(address addr => bool) private _sanctioned;

    /// @notice Emitted when addresses are added to the list.
    event SanctionedAddressesAdded(address[] addrs);
    /// @notice Emitted when addresses are removed from the list.
    event SanctionedAddressesRemoved(address[] addrs);
    /// @notice Emitted when the reverting mode changes.
    event RevertingSet(bool reverting);

    /// @notice The caller is not the owner.
    error OnlyOwner();
    /// @notice The oracle is in reverting mode.
    error OracleDown();

    /// @notice Deploys an empty list owned by the deployer.
    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert OnlyOwner();
        _;
    }

    /// @notice Adds `addrs` to the sanctions list. Owner only.
    function addToSanctionsList(address[] calldata addrs) external onlyOwner {
        for (uint256 i = 0; i < addrs.length; ++i) {
            _sanctioned[addrs[i]] = true;
        }
        emit SanctionedAddressesAdded(addrs);
    }

    /// @notice Removes `addrs` from the sanctions list. Owner only.
    function removeFromSanctionsList(address[] calldata addrs) external onlyOwner {
        for (uint256 i = 0; i < addrs.length; ++i) {
            _sanctioned[addrs[i]] = false;
        }
        emit SanctionedAddressesRemoved(addrs);
    }

    /// @notice Makes `isSanctioned` revert (true) or answer (false). Owner only.
    function setReverting(bool reverting_) external onlyOwner {
        reverting = reverting_;
        emit RevertingSet(reverting_);
    }

    /// @notice True when `addr` is on the list; reverts with `OracleDown` in reverting mode.
    function isSanctioned(address addr) external view returns (bool) {
        if (reverting) revert OracleDown();
        return _sanctioned[addr];
    }
}
