// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFiatToken} from "./interfaces/IFiatToken.sol";

/// @title TransferBatch
/// @notice Submits many signed USDC `transferWithAuthorization`s (EIP-3009) in one transaction,
/// so a relayer pays the 21,000 base cost and the token's cold reads once per batch instead of
/// once per payment.
/// @dev Stateless and ownerless: it holds no funds, no allowance and no configuration. Each
/// authorization binds its payer, payee, amount, validity window and nonce under the payer's
/// signature, and the token checks all of it, so whoever calls this cannot redirect or change a
/// payment; this contract only forwards. Every item runs in its own `try`: one the token refuses
/// (nonce spent or cancelled, not yet valid or expired, bad signature, short balance, blacklist,
/// paused token) is reported with `TransferRefused` and skipped, and the others still pay. A
/// payment made here is seen on chain exactly as a direct one: the token's `AuthorizationUsed`
/// and `Transfer` logs, emitted by the token.
contract TransferBatch {
    /// @notice One signed authorization, as the payer signed it (ECDSA or ERC-1271 `bytes`).
    struct Authorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
        bytes signature;
    }

    /// @notice The token refused item `index` of the batch (payer `from`, nonce `nonce`): nothing
    /// moved for it. `reason` is the token's revert data, as returned.
    event TransferRefused(uint256 index, address indexed from, bytes32 indexed nonce, bytes reason);

    /// @notice Item `index` ran out of gas: the transaction was given too little for the batch.
    /// @dev Reverting here, rather than reporting the item as refused, keeps a relayer's low gas
    /// limit from passing for a refusal by the token: the whole batch can be sent again.
    error OutOfGas(uint256 index);

    /// @notice Submits every authorization in `batch` to `token`, in order, each on its own.
    /// @return paid How many of them the token accepted.
    function transferAll(IFiatToken token, Authorization[] calldata batch) external returns (uint256 paid) {
        for (uint256 i = 0; i < batch.length; ++i) {
            Authorization calldata a = batch[i];
            uint256 before = gasleft();
            try token.transferWithAuthorization(
                a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, a.signature
            ) {
                ++paid;
            } catch (bytes memory reason) {
                // Running out of gas reverts with no data. The token's frames (proxy,
                // implementation, signature checker) each keep back 1/64 of their gas, so such a
                // failure hands back only a few 64ths of `before`; the token's own refusals all
                // carry a reason.
                if (reason.length == 0 && gasleft() < before / 16) revert OutOfGas(i);
                emit TransferRefused(i, a.from, a.nonce, reason);
            }
        }
    }
}
