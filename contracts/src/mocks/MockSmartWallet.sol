// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @notice A minimal ERC-1271 smart wallet for tests: it accepts its owner's ECDSA signature over
/// a hash, and lets the owner make arbitrary calls (approve, transfer, ...).
contract MockSmartWallet is IERC1271 {
    /// @notice The externally owned account whose signatures this wallet accepts.
    address public immutable owner;

    /// @notice The caller is not the owner.
    error OnlyOwner();

    /// @notice Creates a wallet controlled by `owner_`.
    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice Returns the ERC-1271 magic value 0x1626ba7e when `signature` is the owner's ECDSA
    /// signature of `hash`, and 0xffffffff otherwise.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        if (err == ECDSA.RecoverError.NoError && recovered == owner) {
            return IERC1271.isValidSignature.selector;
        }
        return 0xffffffff;
    }

    /// @notice Calls `target` with `data` as this wallet, bubbling up any revert. Owner only.
    function execute(address target, bytes calldata data) external returns (bytes memory result) {
        if (msg.sender != owner) revert OnlyOwner();
        bool ok;
        (ok, result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }
}
