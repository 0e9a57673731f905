// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";

/// @notice The minimum close window (contract v3): terms must give the seller at least
/// `MIN_CLOSE_WINDOW` after a buyer's close to get its last claim mined, so a buyer can no longer
/// close and withdraw everything in one transaction.
contract UsageEscrowCloseWindowTest is EscrowFixture {
    uint256 internal constant PRICE = 100_000;
    uint256 internal constant DEPOSIT = 10_000_000;

    function test_MinCloseWindowIsOneHour() public view {
        assertEq(escrow.MIN_CLOSE_WINDOW(), 1 hours);
        assertGt(escrow.MAX_CLOSE_WINDOW(), escrow.MIN_CLOSE_WINDOW());
    }

    function test_RevertWhen_CloseWindowOneSecondBelowMin() public {
        UsageEscrow.Activation memory t = _terms();
        t.closeWindow = escrow.MIN_CLOSE_WINDOW() - 1;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidCloseWindow.selector));
    }

    function test_CloseWindowAtMinActivates() public {
        UsageEscrow.Activation memory t = _terms();
        t.closeWindow = escrow.MIN_CLOSE_WINDOW();
        bytes32 key = _activate(t);
        assertTrue(_status(key) == UsageEscrow.Status.Active);
    }

    function test_CloseWindowAtMaxActivates() public {
        UsageEscrow.Activation memory t = _terms();
        t.closeWindow = escrow.MAX_CLOSE_WINDOW();
        bytes32 key = _activate(t);
        assertTrue(_status(key) == UsageEscrow.Status.Active);
    }

    function testFuzz_CloseWindowOutsideTheRangeIsRefused(uint256 window) public {
        UsageEscrow.Activation memory t = _terms();
        uint256 min = escrow.MIN_CLOSE_WINDOW();
        uint256 max = escrow.MAX_CLOSE_WINDOW();
        t.closeWindow = window % 2 == 0 ? bound(window, 0, min - 1) : bound(window, max + 1, type(uint256).max);
        _expectActivateRevert(t, _err(UsageEscrow.InvalidCloseWindow.selector));
    }

    // ---------------------------------------------------------------- close and withdraw at once

    /// @dev The buyer's own batch: close, then withdraw.
    function _closeAndWithdrawCalls(UsageEscrow.Activation memory t) internal pure returns (bytes[] memory calls) {
        calls = new bytes[](2);
        calls[0] = abi.encodeCall(UsageEscrow.initiateClose, (t, 0, ""));
        calls[1] = abi.encodeCall(UsageEscrow.buyerWithdraw, (t));
    }

    /// An atomic batch of close and withdraw reverts as a whole: the withdraw is not open yet.
    function test_RevertWhen_BuyerClosesAndWithdrawsInOneAtomicBatch() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.WithdrawNotOpen.selector, block.timestamp + t.closeWindow));
        escrow.batch(_closeAndWithdrawCalls(t), true);

        assertTrue(_status(key) == UsageEscrow.Status.Active, "not even closed");
        assertEq(usdc.balanceOf(buyer), buyerBefore);
    }

    /// A non-atomic batch closes but cannot withdraw; the seller then has the whole window to
    /// claim its usage, and the buyer gets only the rest.
    function test_BuyerClosesAndWithdrawsInOneBatchButTheSellerStillClaims() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(buyer);
        bool[] memory ok = escrow.batch(_closeAndWithdrawCalls(t), false);

        assertTrue(ok[0], "closed");
        assertFalse(ok[1], "withdraw refused");
        assertEq(usdc.balanceOf(buyer), buyerBefore, "nothing taken back");
        assertTrue(_status(key) == UsageEscrow.Status.Closing);

        vm.warp(block.timestamp + t.closeWindow - 1);
        uint256 sellerBefore = usdc.balanceOf(seller);
        _claim(t, 70);
        assertEq(usdc.balanceOf(seller), sellerBefore + 70 * PRICE, "the seller claims inside the window");

        vm.warp(block.timestamp + 1);
        _withdrawAsBuyer(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore + 30 * PRICE, "the buyer gets only the rest");
    }

    /// The same through the sponsored path: the buyer's close and withdraw authorizations in one
    /// relayer batch.
    function test_RevertWhen_SponsoredCloseAndWithdrawInOneBatch() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes[] memory calls = new bytes[](2);
        calls[0] = abi.encodeCall(
            UsageEscrow.initiateCloseWithAuthorization,
            (t, buyer, 0, "", deadline, _signClose(buyerKey, t, buyer, 0, deadline))
        );
        calls[1] = abi.encodeCall(
            UsageEscrow.buyerWithdrawWithAuthorization, (t, deadline, _signWithdraw(buyerKey, t, deadline))
        );
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.WithdrawNotOpen.selector, block.timestamp + t.closeWindow));
        escrow.batch(calls, true);

        assertTrue(_status(key) == UsageEscrow.Status.Active);
        assertEq(usdc.balanceOf(buyer), buyerBefore);
        _assertEscrowHolds(DEPOSIT);
    }

    /// A buyer's close after expiry runs the window from expiry, so withdraw opens at
    /// `expiry + closeWindow` at the earliest: never before the seller had the whole window.
    function test_LateCloseStillLeavesTheSellerTheWindowAfterExpiry() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        vm.warp(t.expiry + 1);
        _closeAsBuyer(t);
        assertEq(escrow.escrowOf(key).closesAt, t.expiry + escrow.MIN_CLOSE_WINDOW());

        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.WithdrawNotOpen.selector, t.expiry + t.closeWindow));
        escrow.buyerWithdraw(t);
    }
}
