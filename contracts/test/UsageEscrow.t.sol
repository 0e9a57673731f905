// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";
import {IFiatToken} from "../src/interfaces/IFiatToken.sol";
import {ISanctionsOracle} from "../src/interfaces/ISanctionsOracle.sol";
import {MockUSDC} from "../src/mocks/MockUSDC.sol";
import {MockUSDCAuthorizations} from "../src/mocks/MockUSDCAuthorizations.sol";
import {MockSmartWallet} from "../src/mocks/MockSmartWallet.sol";

/// @notice Unit tests of every path and every refusal of UsageEscrow, with real signatures.
/// @dev The default terms (EscrowFixture._terms): 100 units at 0.10 USDC, a 0.10 USDC fee,
/// activate within an hour, expiry in a day, a one-hour close window. The deposit is 10 USDC.
contract UsageEscrowTest is EscrowFixture {
    uint256 internal constant PRICE = 100_000;
    uint256 internal constant DEPOSIT = 10_000_000;
    uint256 internal constant FEE = 100_000;

    address internal stranger = address(0x5757);

    // ---------------------------------------------------------------- helpers

    /// @dev Expects `party`'s direct close to be refused because the agreement is in `status`.
    function _expectCloseRefused(UsageEscrow.Activation memory t, address party, UsageEscrow.Status status) internal {
        vm.prank(party);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, status));
        escrow.initiateClose(t, 0, "");
    }

    /// @dev Activates `t` with no fee authorization, so the fee comes from an allowance already
    /// given.
    function _activateWithExistingAllowance(UsageEscrow.Activation memory t) internal {
        bytes memory a = _signActivation(buyerKey, t);
        bytes memory f = _signFunding(buyerKey, t);
        vm.prank(relayer);
        escrow.activate(t, a, f, "");
    }

    /// @dev Default terms whose buyer is a fresh ERC-1271 wallet (holding 100 USDC) that the
    /// buyer's key signs for.
    function _smartWalletTerms() internal returns (MockSmartWallet wallet, UsageEscrow.Activation memory t) {
        wallet = new MockSmartWallet(buyer);
        usdc.mint(address(wallet), 100 * USDC);
        t = _terms();
        t.buyer = address(wallet);
    }

    /// @dev Signs an InitiateClose for `party` with `key` (and, for final units, the buyer's
    /// voucher) and sends it through the relayer; expects `expectedError` when it is not empty.
    function _closeWithAuthorization(
        UsageEscrow.Activation memory t,
        uint256 key,
        address party,
        uint256 finalUnits,
        uint256 deadline,
        bytes memory expectedError
    ) internal {
        bytes memory voucher = finalUnits == 0 ? bytes("") : _signVoucher(buyerKey, t, finalUnits);
        bytes memory auth = _signClose(key, t, party, finalUnits, deadline);
        if (expectedError.length != 0) vm.expectRevert(expectedError);
        vm.prank(relayer);
        escrow.initiateCloseWithAuthorization(t, party, finalUnits, voucher, deadline, auth);
    }

    // ---------------------------------------------------------------- constructor

    function test_ConstructorSetsImmutables() public view {
        assertEq(address(escrow.token()), address(usdc));
        assertEq(address(escrow.sanctionsOracle()), address(oracle));
        assertEq(escrow.feeRecipient(), feeRecipient);
    }

    function test_RevertWhen_ConstructorTokenIsZero() public {
        vm.expectRevert(_err(UsageEscrow.ZeroAddress.selector));
        new UsageEscrow(IFiatToken(address(0)), ISanctionsOracle(address(oracle)), feeRecipient);
    }

    function test_RevertWhen_ConstructorOracleIsZero() public {
        vm.expectRevert(_err(UsageEscrow.ZeroAddress.selector));
        new UsageEscrow(IFiatToken(address(usdc)), ISanctionsOracle(address(0)), feeRecipient);
    }

    function test_RevertWhen_ConstructorFeeRecipientIsZero() public {
        vm.expectRevert(_err(UsageEscrow.ZeroAddress.selector));
        new UsageEscrow(IFiatToken(address(usdc)), ISanctionsOracle(address(oracle)), address(0));
    }

    // ---------------------------------------------------------------- activation

    function test_ActivateWithFee() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 expectedKey = _keyOf(t);
        uint256 buyerBefore = usdc.balanceOf(buyer);
        uint256 feeBefore = usdc.balanceOf(feeRecipient);

        bytes32 key = _activate(t);

        assertEq(key, expectedKey, "returned key");
        assertEq(usdc.balanceOf(buyer), buyerBefore - DEPOSIT - FEE, "buyer paid deposit and fee");
        assertEq(usdc.balanceOf(address(escrow)), DEPOSIT + FEE, "escrow holds the deposit and the fee");
        assertEq(escrow.accruedFees(), FEE, "the fee accrues");
        assertEq(usdc.balanceOf(feeRecipient), feeBefore, "the fee recipient is paid only on withdrawFees");
        assertEq(usdc.balanceOf(relayer), 0, "relayer holds nothing");
        assertEq(usdc.allowance(buyer, address(escrow)), 0, "no allowance left");
        assertTrue(usdc.authorizationState(buyer, key), "funding nonce consumed");
        assertTrue(usdc.authorizationState(buyer, escrow.infraFeeNonce(key)), "fee nonce consumed");

        UsageEscrow.Escrow memory e = escrow.escrowOf(key);
        assertEq(uint256(e.status), uint256(UsageEscrow.Status.Active));
        assertFalse(e.buyerWithdrawn);
        assertEq(e.closesAt, 0);
        assertEq(e.claimedUnits, 0);
    }

    function test_ActivateWithoutFee() public {
        UsageEscrow.Activation memory t = _terms();
        t.infraFee = 0;
        uint256 buyerBefore = usdc.balanceOf(buyer);
        uint256 feeBefore = usdc.balanceOf(feeRecipient);

        bytes32 key = _activate(t);

        assertEq(usdc.balanceOf(buyer), buyerBefore - DEPOSIT);
        assertEq(usdc.balanceOf(address(escrow)), DEPOSIT);
        assertEq(escrow.accruedFees(), 0, "no fee taken");
        assertEq(usdc.balanceOf(feeRecipient), feeBefore);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Active));
    }

    function test_ActivateWithoutFeeIgnoresAnyFeeSignature() public {
        UsageEscrow.Activation memory t = _terms();
        t.infraFee = 0;
        (bytes memory a, bytes memory f,) = _signAll(t);
        bytes32 key = _keyOf(t);

        vm.prank(relayer);
        escrow.activate(t, a, f, hex"deadbeef");

        assertEq(escrow.accruedFees(), 0);
        assertEq(usdc.balanceOf(address(escrow)), DEPOSIT);
        assertFalse(usdc.authorizationState(buyer, escrow.infraFeeNonce(key)), "no fee authorization used");
    }

    function test_ActivateFeeFromExistingAllowanceWithEmptyFeeSignature() public {
        UsageEscrow.Activation memory t = _terms();
        vm.prank(buyer);
        usdc.approve(address(escrow), FEE);
        uint256 buyerBefore = usdc.balanceOf(buyer);
        uint256 feeBefore = usdc.balanceOf(feeRecipient);

        _activateWithExistingAllowance(t);

        assertEq(usdc.balanceOf(buyer), buyerBefore - DEPOSIT - FEE);
        assertEq(usdc.balanceOf(address(escrow)), DEPOSIT + FEE);
        assertEq(escrow.accruedFees(), FEE);
        assertEq(usdc.balanceOf(feeRecipient), feeBefore);
        assertEq(usdc.allowance(buyer, address(escrow)), 0, "allowance spent");
        assertFalse(usdc.authorizationState(buyer, escrow.infraFeeNonce(_keyOf(t))), "no fee authorization used");
    }

    function test_ActivateTakesOnlyTheFeeFromALargerAllowance() public {
        UsageEscrow.Activation memory t = _terms();
        vm.prank(buyer);
        usdc.approve(address(escrow), 5 * FEE);
        uint256 feeBefore = usdc.balanceOf(feeRecipient);

        _activateWithExistingAllowance(t);

        assertEq(escrow.accruedFees(), FEE);
        assertEq(usdc.balanceOf(address(escrow)), DEPOSIT + FEE);
        assertEq(usdc.balanceOf(feeRecipient), feeBefore);
        assertEq(usdc.allowance(buyer, address(escrow)), 4 * FEE);
    }

    function test_ActivateEmitsEscrowActivated() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _keyOf(t);
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.EscrowActivated(
            key, t.agreementId, buyer, seller, t.unitPrice, t.quantity, DEPOSIT, t.infraFee, t.expiry, t.closeWindow
        );
        vm.prank(relayer);
        escrow.activate(t, a, f, p);
    }

    // ActivateOneSecondBeforeActivateBy: checked by UsageEscrowAttacks.t.sol test_DeadlineActivateOneSecondBeforeActivateBy.

    // RevertWhen_ActivateAtActivateBy: checked by UsageEscrowAttacks.t.sol test_RevertWhen_DeadlineActivateAtActivateBy.

    function test_RevertWhen_ActivateBuyerIsZero() public {
        UsageEscrow.Activation memory t = _terms();
        t.buyer = address(0);
        _expectActivateRevert(t, _err(UsageEscrow.InvalidParties.selector));
    }

    function test_RevertWhen_ActivateSellerIsZero() public {
        UsageEscrow.Activation memory t = _terms();
        t.seller = address(0);
        _expectActivateRevert(t, _err(UsageEscrow.InvalidParties.selector));
    }

    function test_RevertWhen_ActivateBuyerIsSeller() public {
        UsageEscrow.Activation memory t = _terms();
        t.seller = buyer;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidParties.selector));
    }

    function test_RevertWhen_ActivateQuantityIsZero() public {
        UsageEscrow.Activation memory t = _terms();
        t.quantity = 0;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidQuantity.selector));
    }

    function test_RevertWhen_ActivateQuantityAboveUint64() public {
        UsageEscrow.Activation memory t = _terms();
        t.quantity = uint256(type(uint64).max) + 1;
        t.unitPrice = 1;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidQuantity.selector));
    }

    function test_ActivateQuantityAtUint64Max() public {
        UsageEscrow.Activation memory t = _terms();
        t.quantity = type(uint64).max;
        t.unitPrice = 1;
        usdc.mint(buyer, t.quantity);
        bytes32 key = _activate(t);
        _assertEscrowHolds(type(uint64).max);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Active));
    }

    function test_RevertWhen_ActivateUnitPriceIsZero() public {
        UsageEscrow.Activation memory t = _terms();
        t.unitPrice = 0;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidUnitPrice.selector));
    }

    function test_RevertWhen_ActivateUnitPriceAboveUint128() public {
        UsageEscrow.Activation memory t = _terms();
        t.unitPrice = uint256(type(uint128).max) + 1;
        t.quantity = 1;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidUnitPrice.selector));
    }

    function test_ActivateUnitPriceAtUint128Max() public {
        UsageEscrow.Activation memory t = _terms();
        t.unitPrice = type(uint128).max;
        t.quantity = 1;
        usdc.mint(buyer, t.unitPrice);
        _activate(t);
        _assertEscrowHolds(type(uint128).max);
    }

    function test_RevertWhen_ActivateExpiryIsNow() public {
        UsageEscrow.Activation memory t = _terms();
        t.expiry = block.timestamp;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidExpiry.selector));
    }

    function test_RevertWhen_ActivateExpiryInThePast() public {
        UsageEscrow.Activation memory t = _terms();
        t.expiry = block.timestamp - 1;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidExpiry.selector));
    }

    function test_ActivateExpiryOneSecondAhead() public {
        UsageEscrow.Activation memory t = _terms();
        t.expiry = block.timestamp + 1;
        bytes32 key = _activate(t);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Active));
    }

    function test_RevertWhen_ActivateExpiryAboveMax() public {
        UsageEscrow.Activation memory t = _terms();
        t.expiry = escrow.MAX_EXPIRY() + 1;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidExpiry.selector));
    }

    function test_ActivateExpiryAtMax() public {
        UsageEscrow.Activation memory t = _terms();
        t.expiry = escrow.MAX_EXPIRY();
        t.closeWindow = escrow.MAX_CLOSE_WINDOW();
        bytes32 key = _activate(t);
        assertEq(escrow.withdrawOpensAt(t), uint256(type(uint40).max), "fits the packed timestamp");
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Active));
    }

    function test_RevertWhen_ActivateCloseWindowAboveMax() public {
        UsageEscrow.Activation memory t = _terms();
        t.closeWindow = escrow.MAX_CLOSE_WINDOW() + 1;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidCloseWindow.selector));
    }

    function test_RevertWhen_ActivateCloseWindowZero() public {
        UsageEscrow.Activation memory t = _terms();
        t.closeWindow = 0;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidCloseWindow.selector));
    }

    function test_RevertWhen_ActivateCloseWindowOneSecondBelowMin() public {
        UsageEscrow.Activation memory t = _terms();
        t.closeWindow = escrow.MIN_CLOSE_WINDOW() - 1;
        _expectActivateRevert(t, _err(UsageEscrow.InvalidCloseWindow.selector));
    }

    function test_ActivateCloseWindowAtMin() public {
        UsageEscrow.Activation memory t = _terms();
        t.closeWindow = escrow.MIN_CLOSE_WINDOW();
        bytes32 key = _activate(t);
        _closeAsBuyer(t);
        assertEq(escrow.escrowOf(key).closesAt, block.timestamp + 1 hours, "the window is an hour");
        vm.warp(block.timestamp + 1 hours);
        uint256 buyerBefore = usdc.balanceOf(buyer);
        _withdrawAsBuyer(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore + DEPOSIT, "withdraw opens when the window ends");
    }

    function test_RevertWhen_ActivateTwice() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        vm.prank(relayer);
        bytes32 key = escrow.activate(t, a, f, p);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.AlreadyActivated.selector, key));
        escrow.activate(t, a, f, p);

        assertEq(usdc.balanceOf(buyer), buyerBefore);
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_ActivationSignedByWrongKey() public {
        UsageEscrow.Activation memory t = _terms();
        bytes memory a = _signActivation(sellerKey, t);
        bytes memory f = _signFunding(buyerKey, t);
        bytes memory p = _signFeeAuthorization(buyerKey, t);
        _expectActivateRevert(t, a, f, p, _err(UsageEscrow.InvalidSignature.selector));
    }

    function test_RevertWhen_ActivationSignatureIsEmpty() public {
        UsageEscrow.Activation memory t = _terms();
        (, bytes memory f, bytes memory p) = _signAll(t);
        _expectActivateRevert(t, "", f, p, _err(UsageEscrow.InvalidSignature.selector));
    }

    function test_RevertWhen_FundingSignedByWrongKey() public {
        UsageEscrow.Activation memory t = _terms();
        bytes memory a = _signActivation(buyerKey, t);
        bytes memory f = _signFunding(sellerKey, t);
        bytes memory p = _signFeeAuthorization(buyerKey, t);
        _expectActivateRevert(t, a, f, p, _err(MockUSDCAuthorizations.InvalidSignature.selector));
    }

    function test_RevertWhen_InfraFeeNeitherAuthorizedNorApproved() public {
        UsageEscrow.Activation memory t = _terms();
        bytes memory a = _signActivation(buyerKey, t);
        bytes memory f = _signFunding(buyerKey, t);
        // The helper checks that the deposit pull was rolled back.
        _expectActivateRevert(t, a, f, "", _err(UsageEscrow.InfraFeeNotAuthorized.selector));
    }

    /// A fee authorization is used as given: a bad one reverts in the token, with no fallback to
    /// an allowance.
    function test_RevertWhen_InfraFeeAuthorizationSignedByWrongKey() public {
        UsageEscrow.Activation memory t = _terms();
        vm.prank(buyer);
        usdc.approve(address(escrow), FEE);
        bytes memory a = _signActivation(buyerKey, t);
        bytes memory f = _signFunding(buyerKey, t);
        bytes memory p = _signFeeAuthorization(sellerKey, t);
        _expectActivateRevert(t, a, f, p, _err(MockUSDCAuthorizations.InvalidSignature.selector));
        assertEq(usdc.allowance(buyer, address(escrow)), FEE, "allowance untouched");
    }

    function test_RevertWhen_InfraFeeAllowanceTooSmall() public {
        UsageEscrow.Activation memory t = _terms();
        vm.prank(buyer);
        usdc.approve(address(escrow), FEE - 1);
        bytes memory a = _signActivation(buyerKey, t);
        bytes memory f = _signFunding(buyerKey, t);
        _expectActivateRevert(t, a, f, "", _err(UsageEscrow.InfraFeeNotAuthorized.selector));
    }

    function test_RevertWhen_BuyerCannotCoverDeposit() public {
        UsageEscrow.Activation memory t = _terms();
        t.quantity = 20_000_000; // 2,000,000 USDC, more than the buyer holds
        _expectActivateRevert(
            t,
            abi.encodeWithSelector(
                MockUSDC.InsufficientBalance.selector, buyer, usdc.balanceOf(buyer), t.quantity * t.unitPrice
            )
        );
    }

    // ---------------------------------------------------------------- initiateClose

    function test_InitiateCloseByBuyerStartsCloseWindow() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        vm.warp(block.timestamp + 100);
        uint256 closesAt = block.timestamp + t.closeWindow;

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.CloseInitiated(key, buyer, closesAt);
        _closeAsBuyer(t);

        UsageEscrow.Escrow memory e = escrow.escrowOf(key);
        assertEq(uint256(e.status), uint256(UsageEscrow.Status.Closing));
        assertEq(e.closesAt, closesAt);
        assertFalse(e.buyerWithdrawn);
        _assertEscrowHolds(DEPOSIT, "no money moves");
        assertEq(escrow.withdrawOpensAt(t), closesAt);
    }

    function test_InitiateCloseByBuyerIgnoresFinalUnits() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.prank(buyer);
        escrow.initiateClose(t, 50, hex"00");

        assertEq(usdc.balanceOf(seller), sellerBefore);
        assertEq(escrow.escrowOf(key).claimedUnits, 0);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Closing));
    }

    function test_InitiateCloseBySellerWithFinalVoucherSettlesAtOnce() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 40);
        uint256 sellerBefore = usdc.balanceOf(seller);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.CloseInitiated(key, seller, block.timestamp);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.UsageClaimed(key, seller, 40, 40 * PRICE);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.AgreementSettled(key, 40, 40 * PRICE, 60 * PRICE);
        vm.prank(seller);
        escrow.initiateClose(t, 40, voucher);

        assertEq(usdc.balanceOf(seller), sellerBefore + 40 * PRICE, "seller paid");
        UsageEscrow.Escrow memory e = escrow.escrowOf(key);
        assertEq(uint256(e.status), uint256(UsageEscrow.Status.Settled));
        assertEq(e.claimedUnits, 40);
        assertFalse(e.buyerWithdrawn);
        assertEq(escrow.withdrawOpensAt(t), 0, "buyer may withdraw at once");

        _withdrawAsBuyer(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore + 60 * PRICE, "buyer refunded at once");
        _assertEscrowHolds(0);
    }

    function test_InitiateCloseBySellerAtQuantityMarksBuyerWithdrawn() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 100);
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.AgreementSettled(key, 100, DEPOSIT, 0);
        vm.prank(seller);
        escrow.initiateClose(t, 100, voucher);

        assertEq(usdc.balanceOf(seller), sellerBefore + DEPOSIT);
        _assertEscrowHolds(0);
        assertTrue(escrow.escrowOf(key).buyerWithdrawn, "nothing left for the buyer");
        assertEq(escrow.withdrawOpensAt(t), type(uint256).max);

        vm.prank(buyer);
        vm.expectRevert(_err(UsageEscrow.AlreadyWithdrawn.selector));
        escrow.buyerWithdraw(t);
    }

    function test_InitiateCloseBySellerWithoutNewUnitsSettlesWithoutPayment() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        uint256 sellerBefore = usdc.balanceOf(seller);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.AgreementSettled(key, 0, 0, DEPOSIT);
        _closeAsSeller(t);

        assertEq(usdc.balanceOf(seller), sellerBefore);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Settled));
        _withdrawAsBuyer(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore + DEPOSIT);
    }

    function test_InitiateCloseBySellerBelowClaimedPaysNothingMore() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        _claim(t, 30);
        uint256 sellerBefore = usdc.balanceOf(seller);

        // No voucher needed for units already claimed.
        vm.prank(seller);
        escrow.initiateClose(t, 10, "");

        assertEq(usdc.balanceOf(seller), sellerBefore);
        assertEq(escrow.escrowOf(key).claimedUnits, 30, "claimed units never go back");
        _assertEscrowHolds(70 * PRICE);
    }

    function test_InitiateCloseBySellerAfterClaimPaysOnlyTheDifference() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _claim(t, 30);
        bytes memory voucher = _signVoucher(buyerKey, t, 45);
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.prank(seller);
        escrow.initiateClose(t, 45, voucher);

        assertEq(usdc.balanceOf(seller), sellerBefore + 15 * PRICE);
        _assertEscrowHolds(55 * PRICE);
    }

    function test_InitiateCloseBySellerDuringClosingLetsBuyerWithdrawBeforeClosesAt() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        _closeAsBuyer(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 20);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(seller);
        escrow.initiateClose(t, 20, voucher);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Settled));

        _withdrawAsBuyer(t); // still inside the close window
        assertEq(usdc.balanceOf(buyer), buyerBefore + 80 * PRICE);
        _assertEscrowHolds(0);
    }

    function test_RevertWhen_InitiateCloseBySellerWithVoucherNotSignedByBuyer() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(sellerKey, t, 40);
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.prank(seller);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.initiateClose(t, 40, voucher);
        assertEq(usdc.balanceOf(seller), sellerBefore);
    }

    // RevertWhen_InitiateCloseBySellerAboveQuantity: checked by UsageEscrowAttacks.t.sol test_RevertWhen_FinalCloseAboveQuantity.

    function test_RevertWhen_InitiateCloseByStranger() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.NotParty.selector, stranger));
        escrow.initiateClose(t, 0, "");
    }

    function test_RevertWhen_BuyerClosesTwice() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _closeAsBuyer(t);
        _expectCloseRefused(t, buyer, UsageEscrow.Status.Closing);
    }

    function test_RevertWhen_SellerClosesTwice() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _closeAsSeller(t);
        _expectCloseRefused(t, seller, UsageEscrow.Status.Settled);
    }

    function test_RevertWhen_BuyerClosesAfterSellerSettled() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _closeAsSeller(t);
        _expectCloseRefused(t, buyer, UsageEscrow.Status.Settled);
    }

    function test_RevertWhen_InitiateCloseOnUnknownTerms() public {
        UsageEscrow.Activation memory t = _terms();
        _expectCloseRefused(t, buyer, UsageEscrow.Status.None);
        _expectCloseRefused(t, seller, UsageEscrow.Status.None);
    }

    // ---------------------------------------------------------------- sellerClaim

    function test_SellerClaimPaysVoucherUnits() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.UsageClaimed(key, seller, 30, 30 * PRICE);
        vm.prank(seller);
        escrow.sellerClaim(t, 30, voucher);

        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
        _assertEscrowHolds(70 * PRICE);
        UsageEscrow.Escrow memory e = escrow.escrowOf(key);
        assertEq(e.claimedUnits, 30);
        assertEq(uint256(e.status), uint256(UsageEscrow.Status.Active), "still active");
    }

    function test_SellerClaimProgressiveVouchersPayTheDelta() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _claim(t, 10);
        assertEq(usdc.balanceOf(seller), sellerBefore + 10 * PRICE);
        _claim(t, 25);
        assertEq(usdc.balanceOf(seller), sellerBefore + 25 * PRICE);

        bytes memory voucher = _signVoucher(buyerKey, t, 60);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.UsageClaimed(key, seller, 60, 35 * PRICE);
        vm.prank(seller);
        escrow.sellerClaim(t, 60, voucher);

        assertEq(usdc.balanceOf(seller), sellerBefore + 60 * PRICE);
        _assertEscrowHolds(40 * PRICE);
        assertEq(escrow.escrowOf(key).claimedUnits, 60);
    }

    function test_RevertWhen_SellerClaimReplaysAnOldVoucher() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory old = _signVoucher(buyerKey, t, 10);
        vm.prank(seller);
        escrow.sellerClaim(t, 10, old);
        _claim(t, 25);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _expectClaimRevert(t, 10, old, abi.encodeWithSelector(UsageEscrow.NothingToClaim.selector, 10, 25));
        assertEq(usdc.balanceOf(seller), sellerBefore);
    }

    // RevertWhen_SellerClaimsTheSameVoucherAgain: checked by UsageEscrowAttacks.t.sol test_RevertWhen_SameVoucherClaimedTwice.

    function test_RevertWhen_SellerClaimsZeroUnits() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 0);
        _expectClaimRevert(t, 0, voucher, abi.encodeWithSelector(UsageEscrow.NothingToClaim.selector, 0, 0));
    }

    // RevertWhen_SellerClaimAboveQuantity: checked by UsageEscrowAttacks.t.sol test_RevertWhen_ClaimAboveQuantity.

    function test_RevertWhen_SellerClaimByBuyer() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.NotParty.selector, buyer));
        escrow.sellerClaim(t, 30, voucher);
    }

    function test_RevertWhen_SellerClaimByRelayerWithoutAuthorization() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.NotParty.selector, relayer));
        escrow.sellerClaim(t, 30, voucher);
    }

    function test_RevertWhen_SellerClaimVoucherSignedBySeller() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(sellerKey, t, 30);
        _expectClaimRevert(t, 30, voucher, _err(UsageEscrow.InvalidSignature.selector));
    }

    function test_RevertWhen_SellerClaimsMoreUnitsThanTheVoucher() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        _expectClaimRevert(t, 31, voucher, _err(UsageEscrow.InvalidSignature.selector));
        _assertEscrowHolds(DEPOSIT);
    }

    function test_SellerClaimInClosingAfterWindowEndUntilWithdraw() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        _closeAsBuyer(t);
        vm.warp(escrow.escrowOf(key).closesAt + 1 days);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _claim(t, 30);

        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Closing));
        uint256 buyerBefore = usdc.balanceOf(buyer);
        _withdrawAsBuyer(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore + 70 * PRICE);
    }

    function test_SellerClaimAfterExpiryWhileActive() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        vm.warp(t.expiry + t.closeWindow + 1 days);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _claim(t, 30);

        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
    }

    function test_SellerClaimReachingQuantitySettles() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        _claim(t, 30);
        bytes memory voucher = _signVoucher(buyerKey, t, 100);
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.UsageClaimed(key, seller, 100, 70 * PRICE);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.AgreementSettled(key, 100, DEPOSIT, 0);
        vm.prank(seller);
        escrow.sellerClaim(t, 100, voucher);

        assertEq(usdc.balanceOf(seller), sellerBefore + 70 * PRICE);
        _assertEscrowHolds(0);
        UsageEscrow.Escrow memory e = escrow.escrowOf(key);
        assertEq(uint256(e.status), uint256(UsageEscrow.Status.Settled));
        assertTrue(e.buyerWithdrawn);
        assertEq(e.claimedUnits, 100);

        vm.prank(buyer);
        vm.expectRevert(_err(UsageEscrow.AlreadyWithdrawn.selector));
        escrow.buyerWithdraw(t);
    }

    // RevertWhen_SellerClaimsAfterSettled: checked by UsageEscrowAttacks.t.sol test_RevertWhen_SellerClaimsAfterItsFinalClose.

    function test_RevertWhen_SellerClaimOnUnknownTerms() public {
        UsageEscrow.Activation memory t = _terms();
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        _expectClaimRevert(
            t, 30, voucher, abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, UsageEscrow.Status.None)
        );
    }

    // ---------------------------------------------------------------- buyerWithdraw

    // RevertWhen_BuyerWithdrawsBeforeClosesAt: checked by UsageEscrowAttacks.t.sol test_RevertWhen_DeadlineCloseWithdrawOneSecondBeforeClosesAt.

    function test_BuyerWithdrawAtClosesAt() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        _claim(t, 30);
        _closeAsBuyer(t);
        vm.warp(escrow.escrowOf(key).closesAt);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.BuyerWithdrawn(key, buyer, 70 * PRICE);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.AgreementSettled(key, 30, 30 * PRICE, 70 * PRICE);
        _withdrawAsBuyer(t);

        assertEq(usdc.balanceOf(buyer), buyerBefore + 70 * PRICE);
        _assertEscrowHolds(0);
        UsageEscrow.Escrow memory e = escrow.escrowOf(key);
        assertEq(uint256(e.status), uint256(UsageEscrow.Status.Settled));
        assertTrue(e.buyerWithdrawn);
        assertEq(e.claimedUnits, 30);
        assertEq(escrow.withdrawOpensAt(t), type(uint256).max);
    }

    // BuyerWithdrawAtExpiryPlusCloseWindowWithoutClose: checked by UsageEscrowAttacks.t.sol test_DeadlineExpiryWithdrawAtExpiryPlusCloseWindow.

    // RevertWhen_BuyerWithdrawsOneSecondBeforeExpiryPlusCloseWindow: checked by UsageEscrowAttacks.t.sol test_RevertWhen_DeadlineExpiryWithdrawOneSecondBefore.

    function test_RevertWhen_BuyerWithdrawsWhileActiveBeforeExpiry() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.WithdrawNotOpen.selector, t.expiry + t.closeWindow));
        escrow.buyerWithdraw(t);
    }

    function test_BuyerWithdrawOpensAtExpiryPlusWindowWhenClosedLate() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        vm.warp(t.expiry + 10 minutes);
        _closeAsBuyer(t);
        assertEq(escrow.escrowOf(key).closesAt, t.expiry + t.closeWindow, "window runs from expiry");
        assertEq(escrow.withdrawOpensAt(t), t.expiry + t.closeWindow);

        vm.warp(t.expiry + t.closeWindow);
        uint256 buyerBefore = usdc.balanceOf(buyer);
        _withdrawAsBuyer(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore + DEPOSIT);
    }

    function test_BuyerWithdrawAfterSellerSettledEmitsNoSecondSettlement() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        _closeAsSeller(t);

        vm.recordLogs();
        _withdrawAsBuyer(t);
        Vm.Log[] memory logs = vm.getRecordedLogs();

        uint256 escrowLogs;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(escrow)) continue;
            ++escrowLogs;
            assertEq(logs[i].topics[0], UsageEscrow.BuyerWithdrawn.selector);
            assertEq(logs[i].topics[1], key);
        }
        assertEq(escrowLogs, 1, "only BuyerWithdrawn");
    }

    // RevertWhen_BuyerWithdrawsTwice: checked by UsageEscrowAttacks.t.sol test_RevertWhen_BuyerWithdrawsTwice.

    function test_RevertWhen_BuyerWithdrawOnUnknownTerms() public {
        UsageEscrow.Activation memory t = _terms();
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, UsageEscrow.Status.None));
        escrow.buyerWithdraw(t);
    }

    function test_RevertWhen_BuyerWithdrawByNonBuyer() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        vm.prank(seller);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.NotParty.selector, seller));
        escrow.buyerWithdraw(t);
    }

    // ---------------------------------------------------------------- initiateCloseWithAuthorization

    function test_InitiateCloseWithAuthorizationForBuyer() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.CloseInitiated(key, buyer, block.timestamp + t.closeWindow);
        _closeWithAuthorization(t, buyerKey, buyer, 0, block.timestamp + 10 minutes, "");

        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Closing));
        assertEq(usdc.balanceOf(relayer), 0);
    }

    function test_InitiateCloseWithAuthorizationForSellerSettles() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _closeWithAuthorization(t, sellerKey, seller, 40, block.timestamp + 10 minutes, "");

        assertEq(usdc.balanceOf(seller), sellerBefore + 40 * PRICE);
        assertEq(usdc.balanceOf(relayer), 0);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Settled));
    }

    function test_RevertWhen_InitiateCloseAuthorizationForSellerSignedByBuyer() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _closeWithAuthorization(
            t, buyerKey, seller, 0, block.timestamp + 10 minutes, _err(UsageEscrow.InvalidSignature.selector)
        );
    }

    function test_RevertWhen_InitiateCloseAuthorizationForBuyerSignedBySeller() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _closeWithAuthorization(
            t, sellerKey, buyer, 0, block.timestamp + 10 minutes, _err(UsageEscrow.InvalidSignature.selector)
        );
    }

    function test_RevertWhen_InitiateCloseAuthorizationFinalUnitsChanged() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory voucher = _signVoucher(buyerKey, t, 50);
        bytes memory auth = _signClose(sellerKey, t, seller, 40, deadline);

        vm.prank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.initiateCloseWithAuthorization(t, seller, 50, voucher, deadline, auth);
    }

    function test_RevertWhen_InitiateCloseAuthorizationFromStranger() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        (address other, uint256 otherKey) = makeAddrAndKey("other");
        _closeWithAuthorization(
            t,
            otherKey,
            other,
            0,
            block.timestamp + 10 minutes,
            abi.encodeWithSelector(UsageEscrow.NotParty.selector, other)
        );
    }

    function test_InitiateCloseWithAuthorizationAtDeadline() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        vm.warp(deadline);

        _closeWithAuthorization(t, buyerKey, buyer, 0, deadline, "");
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Closing));
    }

    function test_RevertWhen_InitiateCloseAuthorizationOneSecondPastDeadline() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        vm.warp(deadline + 1);

        _closeWithAuthorization(
            t, buyerKey, buyer, 0, deadline, abi.encodeWithSelector(UsageEscrow.AuthorizationExpired.selector, deadline)
        );
    }

    function test_RevertWhen_InitiateCloseAuthorizationReplayedForBuyer() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        _closeWithAuthorization(t, buyerKey, buyer, 0, deadline, "");

        _closeWithAuthorization(
            t,
            buyerKey,
            buyer,
            0,
            deadline,
            abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, UsageEscrow.Status.Closing)
        );
    }

    function test_RevertWhen_InitiateCloseAuthorizationReplayedForSeller() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        _closeWithAuthorization(t, sellerKey, seller, 40, deadline, "");
        uint256 sellerBefore = usdc.balanceOf(seller);

        _closeWithAuthorization(
            t,
            sellerKey,
            seller,
            40,
            deadline,
            abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, UsageEscrow.Status.Settled)
        );
        assertEq(usdc.balanceOf(seller), sellerBefore, "no second payment");
        _assertEscrowHolds(60 * PRICE);
    }

    // ---------------------------------------------------------------- sellerClaimWithAuthorization

    function test_SellerClaimWithAuthorization() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.UsageClaimed(key, seller, 30, 30 * PRICE);
        _claimWithAuthorization(t, 30, block.timestamp + 10 minutes, "");

        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
        assertEq(usdc.balanceOf(relayer), 0);
    }

    function test_RevertWhen_SellerClaimAuthorizationSignedByBuyer() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        bytes memory auth = _signClaim(buyerKey, t, 30, deadline);

        _expectClaimWithAuthorizationRevert(t, 30, voucher, deadline, auth, _err(UsageEscrow.InvalidSignature.selector));
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_SellerClaimAuthorizationUnitsChanged() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory voucher = _signVoucher(buyerKey, t, 40);
        bytes memory auth = _signClaim(sellerKey, t, 30, deadline);

        _expectClaimWithAuthorizationRevert(t, 40, voucher, deadline, auth, _err(UsageEscrow.InvalidSignature.selector));
    }

    // SellerClaimWithAuthorizationAtDeadline: checked by UsageEscrowAttacks.t.sol test_DeadlineAuthorizationAtDeadline.

    // RevertWhen_SellerClaimAuthorizationOneSecondPastDeadline: checked by UsageEscrowAttacks.t.sol test_RevertWhen_DeadlineAuthorizationOneSecondAfter.

    function test_RevertWhen_SellerClaimAuthorizationReplayed() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        _claimWithAuthorization(t, 30, deadline, "");
        uint256 sellerBefore = usdc.balanceOf(seller);

        _claimWithAuthorization(t, 30, deadline, abi.encodeWithSelector(UsageEscrow.NothingToClaim.selector, 30, 30));
        assertEq(usdc.balanceOf(seller), sellerBefore, "no second payment");
        _assertEscrowHolds(70 * PRICE);
    }

    // ---------------------------------------------------------------- buyerWithdrawWithAuthorization

    function test_BuyerWithdrawWithAuthorization() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activateAndWarpToWithdraw(t);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.BuyerWithdrawn(key, buyer, DEPOSIT);
        _withdrawWithAuthorization(t, block.timestamp + 10 minutes, "");

        assertEq(usdc.balanceOf(buyer), buyerBefore + DEPOSIT);
        assertEq(usdc.balanceOf(relayer), 0);
    }

    function test_RevertWhen_BuyerWithdrawAuthorizationSignedBySeller() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory auth = _signWithdraw(sellerKey, t, deadline);

        vm.prank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.buyerWithdrawWithAuthorization(t, deadline, auth);
        _assertEscrowHolds(DEPOSIT);
    }

    function test_BuyerWithdrawWithAuthorizationAtDeadline() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        uint256 deadline = block.timestamp + 10 minutes;
        vm.warp(deadline);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        _withdrawWithAuthorization(t, deadline, "");
        assertEq(usdc.balanceOf(buyer), buyerBefore + DEPOSIT);
    }

    function test_RevertWhen_BuyerWithdrawAuthorizationOneSecondPastDeadline() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        uint256 deadline = block.timestamp + 10 minutes;
        vm.warp(deadline + 1);

        _withdrawWithAuthorization(
            t, deadline, abi.encodeWithSelector(UsageEscrow.AuthorizationExpired.selector, deadline)
        );
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_BuyerWithdrawAuthorizationReplayed() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        uint256 deadline = block.timestamp + 10 minutes;
        _withdrawWithAuthorization(t, deadline, "");
        uint256 buyerBefore = usdc.balanceOf(buyer);

        _withdrawWithAuthorization(t, deadline, _err(UsageEscrow.AlreadyWithdrawn.selector));
        assertEq(usdc.balanceOf(buyer), buyerBefore, "no second payment");
    }

    // ---------------------------------------------------------------- batch

    function test_BatchAtomicRunsEveryCall() public {
        UsageEscrow.Activation memory a = _terms();
        UsageEscrow.Activation memory b = _terms();
        b.salt = keccak256("other");
        _activate(a);
        bytes32 keyB = _activate(b);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes[] memory calls = new bytes[](2);
        calls[0] = abi.encodeCall(
            UsageEscrow.sellerClaimWithAuthorization,
            (a, 30, _signVoucher(buyerKey, a, 30), deadline, _signClaim(sellerKey, a, 30, deadline))
        );
        calls[1] = abi.encodeCall(
            UsageEscrow.initiateCloseWithAuthorization,
            (b, buyer, 0, "", deadline, _signClose(buyerKey, b, buyer, 0, deadline))
        );
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.prank(relayer);
        bool[] memory ok = escrow.batch(calls, true);

        assertTrue(ok[0] && ok[1]);
        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
        assertEq(uint256(_status(keyB)), uint256(UsageEscrow.Status.Closing));
        _assertEscrowHolds(2 * DEPOSIT - 30 * PRICE);
    }

    function test_BatchNonAtomicFailedCallEmitsBatchCallFailedAndOthersGoThrough() public {
        UsageEscrow.Activation memory a = _terms();
        UsageEscrow.Activation memory b = _terms();
        b.salt = keccak256("other");
        _activate(a);
        _activate(b);
        uint256 deadline = block.timestamp + 10 minutes;
        uint256 lapsed = block.timestamp - 1;
        bytes[] memory calls = new bytes[](3);
        calls[0] = abi.encodeCall(
            UsageEscrow.sellerClaimWithAuthorization,
            (a, 30, _signVoucher(buyerKey, a, 30), deadline, _signClaim(sellerKey, a, 30, deadline))
        );
        calls[1] = abi.encodeCall(
            UsageEscrow.sellerClaimWithAuthorization,
            (b, 20, _signVoucher(buyerKey, b, 20), lapsed, _signClaim(sellerKey, b, 20, lapsed))
        );
        calls[2] = abi.encodeCall(
            UsageEscrow.initiateCloseWithAuthorization,
            (b, seller, 10, _signVoucher(buyerKey, b, 10), deadline, _signClose(sellerKey, b, seller, 10, deadline))
        );
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.BatchCallFailed(1, abi.encodeWithSelector(UsageEscrow.AuthorizationExpired.selector, lapsed));
        vm.prank(relayer);
        bool[] memory ok = escrow.batch(calls, false);

        assertTrue(ok[0], "call 0");
        assertFalse(ok[1], "call 1");
        assertTrue(ok[2], "call 2");
        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE + 10 * PRICE);
        _assertEscrowHolds(2 * DEPOSIT - 40 * PRICE);
    }

    function test_RevertWhen_BatchAtomicCallFails() public {
        UsageEscrow.Activation memory a = _terms();
        _activate(a);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes[] memory calls = new bytes[](2);
        calls[0] = abi.encodeCall(
            UsageEscrow.sellerClaimWithAuthorization,
            (a, 30, _signVoucher(buyerKey, a, 30), deadline, _signClaim(sellerKey, a, 30, deadline))
        );
        calls[1] = abi.encodeCall(
            UsageEscrow.sellerClaimWithAuthorization,
            (a, 101, _signVoucher(buyerKey, a, 101), deadline, _signClaim(sellerKey, a, 101, deadline))
        );
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.UnitsExceedQuantity.selector, 101, 100));
        escrow.batch(calls, true);

        assertEq(usdc.balanceOf(seller), sellerBefore, "the first call was rolled back too");
        _assertEscrowHolds(DEPOSIT);
    }

    function test_BatchActivatesSeveralAgreements() public {
        UsageEscrow.Activation memory a = _terms();
        UsageEscrow.Activation memory b = _terms();
        a.infraFee = 0;
        b.infraFee = 0;
        b.salt = keccak256("other");
        bytes[] memory calls = new bytes[](2);
        calls[0] =
            abi.encodeCall(UsageEscrow.activate, (a, _signActivation(buyerKey, a), _signFunding(buyerKey, a), ""));
        calls[1] =
            abi.encodeCall(UsageEscrow.activate, (b, _signActivation(buyerKey, b), _signFunding(buyerKey, b), ""));
        bytes32 keyA = _keyOf(a);
        bytes32 keyB = _keyOf(b);

        vm.prank(relayer);
        escrow.batch(calls, true);

        assertEq(uint256(_status(keyA)), uint256(UsageEscrow.Status.Active));
        assertEq(uint256(_status(keyB)), uint256(UsageEscrow.Status.Active));
        _assertEscrowHolds(2 * DEPOSIT);
    }

    function test_BatchDirectCallsActForTheBatchSender() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes[] memory calls = new bytes[](1);
        calls[0] = abi.encodeCall(UsageEscrow.sellerClaim, (t, 30, _signVoucher(buyerKey, t, 30)));
        uint256 sellerBefore = usdc.balanceOf(seller);

        // A relayer cannot borrow the seller's direct path through batch.
        vm.prank(relayer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.NotParty.selector, relayer));
        escrow.batch(calls, true);

        vm.prank(seller);
        escrow.batch(calls, true);
        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
    }

    function test_BatchEmpty() public {
        bytes[] memory calls = new bytes[](0);
        bool[] memory ok = escrow.batch(calls, true);
        assertEq(ok.length, 0);
    }

    // ---------------------------------------------------------------- ERC-1271 smart-wallet buyer

    function test_SmartWalletBuyerActivatesAndSignsVouchers() public {
        (MockSmartWallet wallet, UsageEscrow.Activation memory t) = _smartWalletTerms();
        uint256 feeBefore = usdc.balanceOf(feeRecipient);

        // Every buyer signature is the wallet owner's key, checked through ERC-1271.
        bytes32 key = _activate(t);
        assertEq(usdc.balanceOf(address(wallet)), 100 * USDC - DEPOSIT - FEE);
        assertEq(escrow.accruedFees(), FEE, "the wallet's fee authorization went through ERC-1271");
        assertEq(usdc.balanceOf(feeRecipient), feeBefore);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Active));

        uint256 sellerBefore = usdc.balanceOf(seller);
        _claim(t, 30);
        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);

        vm.prank(buyer);
        wallet.execute(address(escrow), abi.encodeCall(UsageEscrow.initiateClose, (t, 0, "")));
        vm.warp(block.timestamp + t.closeWindow);
        vm.prank(buyer);
        wallet.execute(address(escrow), abi.encodeCall(UsageEscrow.buyerWithdraw, (t)));

        assertEq(usdc.balanceOf(address(wallet)), 100 * USDC - 30 * PRICE - FEE);
        _assertEscrowHolds(0);
    }

    function test_SmartWalletBuyerWithdrawsWithAuthorization() public {
        (MockSmartWallet wallet, UsageEscrow.Activation memory t) = _smartWalletTerms();
        t.infraFee = 0;
        _activateAndWarpToWithdraw(t);

        _withdrawWithAuthorization(t, block.timestamp + 10 minutes, "");
        assertEq(usdc.balanceOf(address(wallet)), 100 * USDC);
    }

    function test_RevertWhen_SmartWalletVoucherSignedByAnotherKey() public {
        (, UsageEscrow.Activation memory t) = _smartWalletTerms();
        _activate(t);
        bytes memory voucher = _signVoucher(sellerKey, t, 30);

        _expectClaimRevert(t, 30, voucher, _err(UsageEscrow.InvalidSignature.selector));
    }

    function test_RevertWhen_SmartWalletActivationSignedByAnotherKey() public {
        (, UsageEscrow.Activation memory t) = _smartWalletTerms();
        bytes memory a = _signActivation(sellerKey, t);
        bytes memory f = _signFunding(buyerKey, t);
        bytes memory p = _signFeeAuthorization(buyerKey, t);
        _expectActivateRevert(t, a, f, p, _err(UsageEscrow.InvalidSignature.selector));
    }

    // ---------------------------------------------------------------- views

    function test_TypehashesMatchTheDocumentedTypes() public view {
        assertEq(
            escrow.ACTIVATION_TYPEHASH(),
            keccak256(
                "Activation(address buyer,address seller,uint256 unitPrice,uint256 quantity,uint256 infraFee,uint256 activateBy,uint256 expiry,uint256 closeWindow,bytes32 salt,bytes32 agreementId)"
            )
        );
        assertEq(
            escrow.USAGE_VOUCHER_TYPEHASH(), keccak256("UsageVoucher(bytes32 agreementKey,uint256 cumulativeUnits)")
        );
        assertEq(
            escrow.INITIATE_CLOSE_TYPEHASH(),
            keccak256("InitiateClose(bytes32 agreementKey,address party,uint256 finalUnits,uint256 deadline)")
        );
        assertEq(
            escrow.SELLER_CLAIM_TYPEHASH(),
            keccak256("SellerClaim(bytes32 agreementKey,uint256 cumulativeUnits,uint256 deadline)")
        );
        assertEq(escrow.BUYER_WITHDRAW_TYPEHASH(), keccak256("BuyerWithdraw(bytes32 agreementKey,uint256 deadline)"));
    }

    function test_DomainSeparatorMatchesEip712Domain() public view {
        bytes32 expected = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Pactum UsageEscrow"),
                keccak256("2"),
                block.chainid,
                address(escrow)
            )
        );
        assertEq(escrow.DOMAIN_SEPARATOR(), expected);

        (, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            escrow.eip712Domain();
        assertEq(keccak256(bytes(name)), keccak256("Pactum UsageEscrow"));
        assertEq(keccak256(bytes(version)), keccak256("2"));
        assertEq(chainId, block.chainid);
        assertEq(verifyingContract, address(escrow));
    }

    function test_AgreementKeyIsTheEip712DigestOfTheTerms() public view {
        UsageEscrow.Activation memory t = _terms();
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Activation(address buyer,address seller,uint256 unitPrice,uint256 quantity,uint256 infraFee,uint256 activateBy,uint256 expiry,uint256 closeWindow,bytes32 salt,bytes32 agreementId)"
                ),
                t.buyer,
                t.seller,
                t.unitPrice,
                t.quantity,
                t.infraFee,
                t.activateBy,
                t.expiry,
                t.closeWindow,
                t.salt,
                t.agreementId
            )
        );
        assertEq(escrow.agreementKey(t), _typedDigest(escrow.DOMAIN_SEPARATOR(), structHash));
    }

    function test_DigestHelpersMatchTypedData() public view {
        bytes32 domain = escrow.DOMAIN_SEPARATOR();
        bytes32 key = keccak256("some agreement");
        uint256 deadline = 1_800_000_000;

        assertEq(
            escrow.usageVoucherDigest(key, 42),
            _typedDigest(
                domain,
                keccak256(abi.encode(keccak256("UsageVoucher(bytes32 agreementKey,uint256 cumulativeUnits)"), key, 42))
            )
        );
        assertEq(
            escrow.initiateCloseDigest(key, seller, 42, deadline),
            _typedDigest(
                domain,
                keccak256(
                    abi.encode(
                        keccak256(
                            "InitiateClose(bytes32 agreementKey,address party,uint256 finalUnits,uint256 deadline)"
                        ),
                        key,
                        seller,
                        42,
                        deadline
                    )
                )
            )
        );
        assertEq(
            escrow.sellerClaimDigest(key, 42, deadline),
            _typedDigest(
                domain,
                keccak256(
                    abi.encode(
                        keccak256("SellerClaim(bytes32 agreementKey,uint256 cumulativeUnits,uint256 deadline)"),
                        key,
                        42,
                        deadline
                    )
                )
            )
        );
        assertEq(
            escrow.buyerWithdrawDigest(key, deadline),
            _typedDigest(
                domain,
                keccak256(abi.encode(keccak256("BuyerWithdraw(bytes32 agreementKey,uint256 deadline)"), key, deadline))
            )
        );
    }

    function test_EscrowOfUnknownKeyIsZero() public view {
        UsageEscrow.Escrow memory e = escrow.escrowOf(keccak256("nothing"));
        assertEq(uint256(e.status), uint256(UsageEscrow.Status.None));
        assertFalse(e.buyerWithdrawn);
        assertEq(e.closesAt, 0);
        assertEq(e.claimedUnits, 0);
    }

    function test_WithdrawOpensAtThroughTheLifecycle() public {
        UsageEscrow.Activation memory t = _terms();
        assertEq(escrow.withdrawOpensAt(t), type(uint256).max, "not activated");

        _activate(t);
        assertEq(escrow.withdrawOpensAt(t), t.expiry + t.closeWindow, "active");

        _closeAsBuyer(t);
        assertEq(escrow.withdrawOpensAt(t), block.timestamp + t.closeWindow, "closing");

        _closeAsSeller(t);
        assertEq(escrow.withdrawOpensAt(t), 0, "settled by the seller: open at once");

        _withdrawAsBuyer(t);
        assertEq(escrow.withdrawOpensAt(t), type(uint256).max, "withdrawn");
    }
}
