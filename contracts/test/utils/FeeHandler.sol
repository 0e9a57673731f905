// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Vm} from "./Vm.sol";
import {UsageEscrow} from "../../src/UsageEscrow.sol";
import {MockUSDC} from "../../src/mocks/MockUSDC.sol";

/// @notice Drives the escrow's fee account for the invariant suite, next to EscrowHandler (whose
/// activations accrue the fees): anyone calls `withdrawFees` (now and then while the token
/// blacklists the recipient), and the recipient, or someone else, calls `setFeeRecipient` with
/// one of a few addresses (or zero). It predicts each outcome (success or the exact error) and
/// keeps ghost sums of the fees paid out to each recipient, measured as balance changes.
contract FeeHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 public constant RECIPIENTS = 3;

    // ---------------------------------------------------------------- paths (call counters)

    uint256 public constant FEES_WITHDRAWN = 0;
    uint256 public constant FEES_NONE = 1;
    uint256 public constant FEES_RECIPIENT_BLACKLISTED = 2;
    uint256 public constant RECIPIENT_CHANGED = 3;
    uint256 public constant RECIPIENT_NOT_CALLER = 4;
    uint256 public constant RECIPIENT_ZERO = 5;
    uint256 public constant PATHS = 6;

    /// @notice How often each path was taken.
    uint256[PATHS] public hits;

    UsageEscrow public immutable escrow;
    MockUSDC public immutable usdc;
    /// @notice The addresses the role moves between; the first is the deployment's recipient.
    address[RECIPIENTS] public recipients;
    /// @notice Who else calls: these may withdraw fees but not change the recipient.
    address[] internal _others;

    /// @notice The model's fee recipient.
    address public recipient;
    /// @notice Fees paid out, in all and to each recipient (measured as balance increases).
    uint256 public ghostFeesWithdrawn;
    mapping(address account => uint256) public ghostFeesWithdrawnTo;

    /// @notice A call's outcome differed from the prediction (success, error, or the money moved).
    uint256 public failures;
    /// @notice The first failure's description, for the assertion message.
    string public firstFailure;

    constructor(UsageEscrow escrow_, MockUSDC usdc_, address[] memory others) {
        escrow = escrow_;
        usdc = usdc_;
        recipient = escrow_.feeRecipient();
        recipients = [recipient, address(0xFEE1), address(0xFEE2)];
        _others = others;
    }

    // ================================================================ actions

    /// @notice Someone withdraws the accrued fees; with `blacklistSeed % 5 == 0` while the token
    /// blacklists the recipient, which must revert and keep the fees.
    function withdrawFees(uint256 callerSeed, uint256 blacklistSeed) public {
        address caller = _caller(callerSeed);
        bool blacklisted = blacklistSeed % 5 == 0;
        uint256 accrued = escrow.accruedFees();
        bytes memory expected;
        if (accrued == 0) {
            expected = abi.encodeWithSelector(UsageEscrow.NoFees.selector);
        } else if (blacklisted) {
            expected = abi.encodeWithSelector(MockUSDC.Blacklisted.selector, recipient);
        }
        uint256 recipientBefore = usdc.balanceOf(recipient);
        uint256 escrowBefore = usdc.balanceOf(address(escrow));

        if (blacklisted) _setBlacklisted(recipient, true);
        vm.prank(caller);
        bytes memory err;
        bool ok;
        try escrow.withdrawFees() {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        if (blacklisted) _setBlacklisted(recipient, false);
        if (!_asPredicted(ok, err, expected)) return;

        if (!ok) {
            _check(escrow.accruedFees() == accrued, "refused withdrawal kept the fees");
            _check(usdc.balanceOf(recipient) == recipientBefore, "refused withdrawal paid");
            _hit(accrued == 0 ? FEES_NONE : FEES_RECIPIENT_BLACKLISTED);
            return;
        }
        uint256 received = usdc.balanceOf(recipient) - recipientBefore;
        _check(received == accrued, "the recipient got every accrued fee");
        _check(escrowBefore - usdc.balanceOf(address(escrow)) == accrued, "only the fees left the escrow");
        _check(escrow.accruedFees() == 0, "nothing accrued after a withdrawal");
        ghostFeesWithdrawn += received;
        ghostFeesWithdrawnTo[recipient] += received;
        _hit(FEES_WITHDRAWN);
    }

    /// @notice Mostly the recipient hands its role to one of the recipients; sometimes someone
    /// else tries, or the next recipient is zero.
    function setFeeRecipient(uint256 callerSeed, uint256 nextSeed) public {
        address caller = callerSeed % 3 == 0 ? _caller(callerSeed >> 2) : recipient;
        address next = nextSeed % 8 == 0 ? address(0) : recipients[(nextSeed >> 3) % RECIPIENTS];
        bytes memory expected;
        if (caller != recipient) {
            expected = abi.encodeWithSelector(UsageEscrow.NotFeeRecipient.selector, caller);
        } else if (next == address(0)) {
            expected = abi.encodeWithSelector(UsageEscrow.ZeroAddress.selector);
        }
        uint256 accrued = escrow.accruedFees();

        vm.prank(caller);
        bytes memory err;
        bool ok;
        try escrow.setFeeRecipient(next) {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        if (!_asPredicted(ok, err, expected)) return;
        _check(escrow.accruedFees() == accrued, "the fees stay accrued");
        if (ok) {
            recipient = next;
            _hit(RECIPIENT_CHANGED);
        } else {
            _hit(caller != recipient ? RECIPIENT_NOT_CALLER : RECIPIENT_ZERO);
        }
        _check(escrow.feeRecipient() == recipient, "feeRecipient as modelled");
    }

    /// @notice Withdraws whatever accrued, at the end of a run. Not a fuzz target.
    function drain() external {
        if (escrow.accruedFees() != 0) withdrawFees(0, 1);
    }

    // ================================================================ views

    function hitsOf(uint256 path) external view returns (uint256) {
        return hits[path];
    }

    // ================================================================ internals

    /// @dev Anyone: one of the others or one of the recipients (not necessarily the current one).
    function _caller(uint256 seed) internal view returns (address) {
        uint256 i = seed % (_others.length + RECIPIENTS);
        return i < _others.length ? _others[i] : recipients[i - _others.length];
    }

    function _setBlacklisted(address account, bool listed) internal {
        vm.prank(usdc.blacklister());
        if (listed) usdc.blacklist(account);
        else usdc.unBlacklist(account);
    }

    function _asPredicted(bool ok, bytes memory err, bytes memory expected) internal returns (bool) {
        if (expected.length == 0 ? ok : (!ok && keccak256(err) == keccak256(expected))) return true;
        _fail(ok ? "succeeded against the prediction" : "reverted against the prediction");
        return false;
    }

    function _check(bool condition, string memory what) internal {
        if (!condition) _fail(what);
    }

    function _fail(string memory what) internal {
        failures += 1;
        if (bytes(firstFailure).length == 0) firstFailure = what;
    }

    function _hit(uint256 path) internal {
        hits[path] += 1;
    }
}
