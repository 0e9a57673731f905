// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @notice How real USDC (FiatToken v2.2) decides whose signature an EIP-2612 permit or an
/// EIP-3009 authorization carries, as a stateless contract MockUSDC DELEGATECALLs: USDC's check
/// lives in a separately deployed library, so each check is a call into another account (cold the
/// first time in a transaction), with the signature ABI-encoded in and the answer decoded out.
/// @dev The signer's code decides, and only one scheme is tried: a signer with code (a smart
/// wallet, or an EIP-7702-delegated EOA) is asked through ERC-1271 `isValidSignature` and nothing
/// else, so an EOA's plain ECDSA signature fails once the account has code whose delegate does
/// not answer ERC-1271; a signer without code must have signed with ECDSA, 65 bytes, low `s` and
/// `v` of 27 or 28. Unlike the escrow's own SignatureVerifier (ECDSA first), this always pays an
/// EXTCODESIZE of the signer, cold for an account nothing else touched in the transaction. Run by
/// DELEGATECALL, the ERC-1271 call comes from the token, as USDC's does.
contract MockSignatureChecker {
    /// @notice True when `signature` is `signer`'s over `digest` under the rule above.
    function isValidSignatureNow(address signer, bytes32 digest, bytes calldata signature)
        external
        view
        returns (bool)
    {
        if (signer.code.length != 0) {
            return SignatureChecker.isValidERC1271SignatureNow(signer, digest, signature);
        }
        // tryRecover takes 65 bytes only, refuses a high `s`, and recovers nothing for another `v`.
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        return err == ECDSA.RecoverError.NoError && recovered == signer;
    }
}
