// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @notice Checks a party's signature over an EIP-712 digest: ECDSA for externally owned accounts,
/// ERC-1271 for smart wallets.
/// @dev ECDSA is tried first and the signer's code is only looked at when it fails, so the common
/// EOA case pays no cold EXTCODESIZE. OpenZeppelin's ECDSA refuses high-s values and any `v` other
/// than 27 or 28, so a signature cannot be made malleable into a second valid one.
/// An ERC-1271 check gets at most `ERC1271_GAS_LIMIT` gas, so a wallet that burns gas in
/// `isValidSignature` costs whoever submitted the call a bounded amount and fails the check.
library SignatureVerifier {
    /// @notice The gas an ERC-1271 `isValidSignature` call may use: enough for multi-owner and
    /// passkey wallets (P-256 through the precompile), far below a batch's budget.
    uint256 internal constant ERC1271_GAS_LIMIT = 100_000;

    /// @notice True when `signature` is `signer`'s signature over `digest`.
    function isValidNow(address signer, bytes32 digest, bytes calldata signature) internal view returns (bool) {
        if (signer == address(0)) return false;
        if (signature.length == 65) {
            bytes32 r;
            bytes32 s;
            uint8 v;
            assembly ("memory-safe") {
                r := calldataload(signature.offset)
                s := calldataload(add(signature.offset, 32))
                v := byte(0, calldataload(add(signature.offset, 64)))
            }
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v, r, s);
            if (err == ECDSA.RecoverError.NoError && recovered == signer) return true;
        }
        if (signer.code.length == 0) return false;
        bytes memory query = abi.encodeCall(IERC1271.isValidSignature, (digest, signature));
        bool ok;
        bytes32 answer;
        uint256 answerSize;
        // Only the first word of the answer is copied, so a wallet cannot make the caller pay for
        // a huge return value either.
        assembly ("memory-safe") {
            ok := staticcall(ERC1271_GAS_LIMIT, signer, add(query, 0x20), mload(query), 0x00, 0x20)
            answer := mload(0x00)
            answerSize := returndatasize()
        }
        return ok && answerSize >= 32 && answer == bytes32(IERC1271.isValidSignature.selector);
    }
}
