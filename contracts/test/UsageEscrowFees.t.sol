// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";
import {MockUSDC} from "../src/mocks/MockUSDC.sol";

/// @notice Infra fees accrue in the escrow at activation and are pulled to the fee recipient with
/// `withdrawFees` (anyone may call it; the money only goes to the recipient). The recipient alone
/// may hand its role, and the fees not yet withdrawn, to another address. A recipient the token
/// blacklists stops neither activations nor settlement.
contract UsageEscrowFeesTest is EscrowFixture {
    uint256 internal constant DEPOSIT = 10_000_000;
    uint256 internal constant FEE = 100_000;

    address internal stranger = address(0x5757);
    address internal nextRecipient = address(0xFEE2);

    /// @dev Activates the default terms told apart by `salt`, with their fee authorization.
    function _activateWithFee(string memory salt) internal returns (UsageEscrow.Activation memory t) {
        t = _terms();
        t.salt = keccak256(bytes(salt));
        _activate(t);
    }

    // ---------------------------------------------------------------- accrual

    function test_FeesAccrueAcrossActivations() public {
        _activateWithFee("a");
        UsageEscrow.Activation memory b = _terms();
        b.salt = keccak256("b");
        b.infraFee = 3 * FEE;
        _activate(b);
        UsageEscrow.Activation memory c = _terms();
        c.salt = keccak256("c");
        c.infraFee = 0;
        _activate(c);

        assertEq(escrow.accruedFees(), 4 * FEE);
        assertEq(usdc.balanceOf(address(escrow)), 3 * DEPOSIT + 4 * FEE);
    }

    /// Settling every agreement leaves exactly the accrued fees in the escrow: deposits and fees
    /// are never mixed up.
    function test_SettlementNeverTouchesTheFees() public {
        UsageEscrow.Activation memory t = _activateWithFee("a");
        _claim(t, 100);
        assertEq(usdc.balanceOf(address(escrow)), FEE, "the fee stays after the deposit is paid out");
        assertEq(escrow.accruedFees(), FEE);
    }

    function test_RevertWhen_InfraFeeAboveUint96() public {
        UsageEscrow.Activation memory t = _terms();
        t.infraFee = uint256(type(uint96).max) + 1;
        usdc.mint(buyer, t.infraFee);
        _expectActivateRevert(t, _err(UsageEscrow.InvalidInfraFee.selector));
    }

    function test_ActivateInfraFeeAtUint96Max() public {
        UsageEscrow.Activation memory t = _terms();
        t.infraFee = type(uint96).max;
        usdc.mint(buyer, t.infraFee);
        _activate(t);
        assertEq(escrow.accruedFees(), type(uint96).max);
    }

    /// Accrued fees live in 96 bits: an activation that would overflow them reverts (with the
    /// checked-arithmetic panic) until the fees are withdrawn.
    function test_RevertWhen_AccruedFeesWouldOverflow() public {
        UsageEscrow.Activation memory first = _terms();
        first.infraFee = type(uint96).max;
        UsageEscrow.Activation memory second = _terms();
        second.salt = keccak256("second");
        second.infraFee = 1;
        usdc.mint(buyer, first.infraFee);
        _activate(first);

        _expectActivateRevert(second, abi.encodeWithSignature("Panic(uint256)", 0x11));

        escrow.withdrawFees();
        _activate(second);
        assertEq(escrow.accruedFees(), 1);
    }

    // ---------------------------------------------------------------- withdrawFees

    function test_WithdrawFeesPaysEverythingAccruedToTheRecipient() public {
        _activateWithFee("a");
        _activateWithFee("b");
        uint256 recipientBefore = usdc.balanceOf(feeRecipient);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.FeesWithdrawn(feeRecipient, 2 * FEE);
        escrow.withdrawFees();

        assertEq(usdc.balanceOf(feeRecipient), recipientBefore + 2 * FEE);
        assertEq(escrow.accruedFees(), 0);
        assertEq(usdc.balanceOf(address(escrow)), 2 * DEPOSIT, "the deposits stay");
    }

    /// Anyone may trigger the withdrawal; the caller gets nothing, the recipient everything.
    function test_AnyoneMayWithdrawFeesButOnlyTheRecipientIsPaid() public {
        address[4] memory callers = [stranger, buyer, seller, relayer];
        for (uint256 i; i < callers.length; ++i) {
            _activateWithFee(Strings.toString(i));
            uint256 recipientBefore = usdc.balanceOf(feeRecipient);
            uint256 callerBefore = usdc.balanceOf(callers[i]);

            vm.prank(callers[i]);
            escrow.withdrawFees();

            assertEq(usdc.balanceOf(feeRecipient), recipientBefore + FEE, "the recipient is paid");
            assertEq(usdc.balanceOf(callers[i]), callerBefore, "the caller is not");
            assertEq(escrow.accruedFees(), 0);
        }
    }

    function test_RevertWhen_NoFeesToWithdraw() public {
        vm.expectRevert(_err(UsageEscrow.NoFees.selector));
        escrow.withdrawFees();

        UsageEscrow.Activation memory t = _terms();
        t.infraFee = 0;
        _activate(t);
        vm.expectRevert(_err(UsageEscrow.NoFees.selector));
        escrow.withdrawFees();
    }

    function test_RevertWhen_FeesWithdrawnTwice() public {
        _activateWithFee("a");
        escrow.withdrawFees();
        uint256 recipientBefore = usdc.balanceOf(feeRecipient);

        vm.expectRevert(_err(UsageEscrow.NoFees.selector));
        escrow.withdrawFees();
        assertEq(usdc.balanceOf(feeRecipient), recipientBefore);
    }

    // ---------------------------------------------------------------- blacklisted recipient

    /// While the token blacklists the recipient: activations (with a fee) and settlement go on,
    /// withdrawFees reverts and the fees stay accrued; once lifted, they are withdrawn.
    function test_BlacklistedFeeRecipientStopsOnlyTheWithdrawal() public {
        _activateWithFee("a");
        usdc.blacklist(feeRecipient);

        UsageEscrow.Activation memory b = _activateWithFee("b");
        assertEq(escrow.accruedFees(), 2 * FEE, "activations still take their fee");
        _claim(b, 40);

        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, feeRecipient));
        escrow.withdrawFees();
        assertEq(escrow.accruedFees(), 2 * FEE, "the fees stay");
        _assertEscrowHolds(2 * DEPOSIT - 40 * 100_000);

        usdc.unBlacklist(feeRecipient);
        uint256 recipientBefore = usdc.balanceOf(feeRecipient);
        escrow.withdrawFees();
        assertEq(usdc.balanceOf(feeRecipient), recipientBefore + 2 * FEE);
        assertEq(escrow.accruedFees(), 0);
    }

    /// A blacklisted recipient can still hand its role (and the fees) to an address the token pays.
    function test_BlacklistedFeeRecipientMovesItsFeesToANewAddress() public {
        _activateWithFee("a");
        usdc.blacklist(feeRecipient);

        vm.prank(feeRecipient);
        escrow.setFeeRecipient(nextRecipient);
        escrow.withdrawFees();

        assertEq(usdc.balanceOf(nextRecipient), FEE);
    }

    // ---------------------------------------------------------------- setFeeRecipient

    function test_SetFeeRecipientHandsTheRoleAndTheAccruedFeesOn() public {
        _activateWithFee("a");
        uint256 oldBefore = usdc.balanceOf(feeRecipient);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.FeeRecipientChanged(feeRecipient, nextRecipient);
        vm.prank(feeRecipient);
        escrow.setFeeRecipient(nextRecipient);
        assertEq(escrow.feeRecipient(), nextRecipient);
        assertEq(escrow.accruedFees(), FEE, "the fees do not move yet");

        _activateWithFee("b");
        escrow.withdrawFees();
        assertEq(usdc.balanceOf(nextRecipient), 2 * FEE, "fees accrued before and after go to the new one");
        assertEq(usdc.balanceOf(feeRecipient), oldBefore, "the old recipient gets nothing");

        // The old recipient has no say any more; the new one may hand the role on again.
        vm.prank(feeRecipient);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.NotFeeRecipient.selector, feeRecipient));
        escrow.setFeeRecipient(feeRecipient);
        vm.prank(nextRecipient);
        escrow.setFeeRecipient(feeRecipient);
        assertEq(escrow.feeRecipient(), feeRecipient);
    }

    function test_RevertWhen_SetFeeRecipientByAnyoneElse() public {
        address[4] memory others = [stranger, buyer, seller, relayer];
        for (uint256 i; i < others.length; ++i) {
            vm.prank(others[i]);
            vm.expectRevert(abi.encodeWithSelector(UsageEscrow.NotFeeRecipient.selector, others[i]));
            escrow.setFeeRecipient(others[i]);
        }
        assertEq(escrow.feeRecipient(), feeRecipient);
    }

    /// Not even through `batch`: the delegatecall keeps the batch's sender.
    function test_RevertWhen_SetFeeRecipientThroughABatchOfAnotherSender() public {
        bytes[] memory calls = new bytes[](1);
        calls[0] = abi.encodeCall(UsageEscrow.setFeeRecipient, (stranger));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.NotFeeRecipient.selector, stranger));
        escrow.batch(calls, true);
        assertEq(escrow.feeRecipient(), feeRecipient);
    }

    function test_RevertWhen_SetFeeRecipientToZero() public {
        vm.prank(feeRecipient);
        vm.expectRevert(_err(UsageEscrow.ZeroAddress.selector));
        escrow.setFeeRecipient(address(0));
        assertEq(escrow.feeRecipient(), feeRecipient);
    }
}
