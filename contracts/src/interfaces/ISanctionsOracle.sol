// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice The Chainalysis sanctions oracle interface. Its Base address is configuration.
interface ISanctionsOracle {
    /// @notice True when `addr` is on the sanctions list.
    function isSanctioned(address addr) external view returns (bool);
}
