// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @notice An ERC-1271 wallet that answers honestly (its owner's ECDSA signature) until it is
/// turned hostile; then `_hostileAnswer` decides what `isValidSignature` does. A party can so
/// activate an agreement normally and misbehave later, when its signature is checked in a batch.
abstract contract SwitchableWallet is IERC1271 {
    /// @notice The key whose signatures the wallet accepts while honest.
    address public immutable owner;
    /// @notice Whether `isValidSignature` misbehaves.
    bool public hostile;

    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice Turns the wallet hostile (true) or honest (false). Anyone may: a test stand-in.
    function setHostile(bool hostile_) external {
        hostile = hostile_;
    }

    /// @notice The owner's ECDSA signature while honest; `_hostileAnswer` otherwise.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (hostile) _hostileAnswer();
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        return err == ECDSA.RecoverError.NoError && recovered == owner
            ? IERC1271.isValidSignature.selector
            : bytes4(0xffffffff);
    }

    /// @dev Never returns normally.
    function _hostileAnswer() internal view virtual;
}

/// @notice Hostile: hashes in a loop until the call runs out of gas.
contract GasBurningWallet is SwitchableWallet {
    constructor(address owner_) SwitchableWallet(owner_) {}

    function _hostileAnswer() internal view override {
        bytes32 h = keccak256(abi.encode(owner));
        while (gasleft() != 0) {
            h = keccak256(abi.encode(h));
        }
    }
}

/// @notice Hostile: answers with `ANSWER_SIZE` zero bytes (no magic value), as large as fits in
/// the escrow's ERC-1271 gas allowance, so a caller that copied the whole answer would pay for
/// about as much memory again.
contract HugeAnswerWallet is SwitchableWallet {
    /// @notice 6,000 words: memory for it costs the wallet some 88,000 gas.
    uint256 public constant ANSWER_SIZE = 6000 * 32;

    constructor(address owner_) SwitchableWallet(owner_) {}

    function _hostileAnswer() internal pure override {
        // Not memory-safe: it returns memory Solidity never allocated (all zeros).
        assembly {
            return(0, ANSWER_SIZE)
        }
    }
}
