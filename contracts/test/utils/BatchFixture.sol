// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EscrowFixture} from "./EscrowFixture.sol";
import {Vm} from "./Vm.sol";
import {UsageEscrow} from "../../src/UsageEscrow.sol";

/// @notice Helpers for `sellerClaimBatch` tests: agreements of given sellers, their sponsored
/// claims, and the batch's `ClaimSkipped` and `UsageClaimed` logs.
abstract contract BatchFixture is EscrowFixture {
    /// @dev Activates the default terms with `seller_` as seller, told apart by `salt`.
    function _agreement(address seller_, string memory salt)
        internal
        returns (UsageEscrow.Activation memory t, bytes32 key)
    {
        t = _terms();
        t.seller = seller_;
        t.salt = keccak256(bytes(salt));
        key = _activate(t);
    }

    /// @dev A sponsored claim of `units` on `t`: the buyer's voucher and the seller's
    /// authorization (signed with `sellerKey_`), good for an hour.
    function _claimOf(UsageEscrow.Activation memory t, uint256 sellerKey_, uint256 units)
        internal
        view
        returns (UsageEscrow.SponsoredClaim memory)
    {
        uint256 deadline = block.timestamp + 1 hours;
        return UsageEscrow.SponsoredClaim({
            terms: t,
            cumulativeUnits: units,
            voucherSignature: _signVoucher(buyerKey, t, units),
            deadline: deadline,
            authorization: _signClaim(sellerKey_, t, units, deadline)
        });
    }

    /// @dev Sends `claims` as the relayer and returns the escrow's logs of the call.
    function _runBatch(UsageEscrow.SponsoredClaim[] memory claims) internal returns (Vm.Log[] memory logs) {
        vm.recordLogs();
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);
        logs = vm.getRecordedLogs();
    }

    /// @dev How many `UsageClaimed` logs the escrow emitted in `logs`.
    function _countClaimed(Vm.Log[] memory logs) internal view returns (uint256 n) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(escrow) && logs[i].topics[0] == UsageEscrow.UsageClaimed.selector) ++n;
        }
    }

    /// @dev How many `ClaimSkipped` logs the escrow emitted in `logs` for `key` with `reason`.
    function _countSkipped(Vm.Log[] memory logs, bytes32 key, UsageEscrow.SkipReason reason)
        internal
        view
        returns (uint256 n)
    {
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter != address(escrow) || log.topics[0] != UsageEscrow.ClaimSkipped.selector) continue;
            (, UsageEscrow.SkipReason logged) = abi.decode(log.data, (uint256, UsageEscrow.SkipReason));
            if (log.topics[1] == key && logged == reason) ++n;
        }
    }

    /// @dev How many `ClaimSkipped` logs the escrow emitted in `logs`, whatever the key and reason.
    function _countAllSkipped(Vm.Log[] memory logs) internal view returns (uint256 n) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(escrow) && logs[i].topics[0] == UsageEscrow.ClaimSkipped.selector) ++n;
        }
    }

    /// @dev The stored state of `key`, hashed, to compare before and after.
    function _stateOf(bytes32 key) internal view returns (bytes32) {
        return keccak256(abi.encode(escrow.escrowOf(key)));
    }
}
