// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BatchFixture} from "./utils/BatchFixture.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";

/// @notice `sellerClaimBatch`: many sponsored claims in one transaction, paid per seller; a claim
/// that cannot be paid is skipped with its reason and the others are paid. (Refused payouts and
/// hostile smart wallets: UsageEscrowBatchIsolation.t.sol and UsageEscrowBatchWallets.t.sol.)
contract UsageEscrowClaimBatchTest is BatchFixture {
    address internal seller2;
    uint256 internal seller2Key;

    function setUp() public override {
        super.setUp();
        (seller2, seller2Key) = makeAddrAndKey("seller2");
    }

    function test_PaysEveryClaimAndEachSellerItsSum() public {
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(seller, "a");
        (UsageEscrow.Activation memory b, bytes32 kb) = _agreement(seller, "b");
        (UsageEscrow.Activation memory c, bytes32 kc) = _agreement(seller2, "c");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](3);
        claims[0] = _claimOf(a, sellerKey, 10);
        claims[1] = _claimOf(b, sellerKey, 20);
        claims[2] = _claimOf(c, seller2Key, 30);

        uint256 sellerBefore = usdc.balanceOf(seller);
        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);

        assertEq(usdc.balanceOf(seller) - sellerBefore, 30 * a.unitPrice);
        assertEq(usdc.balanceOf(seller2), 30 * c.unitPrice);
        assertEq(escrowBefore - usdc.balanceOf(address(escrow)), 60 * a.unitPrice);
        assertEq(escrow.escrowOf(ka).claimedUnits, 10);
        assertEq(escrow.escrowOf(kb).claimedUnits, 20);
        assertEq(escrow.escrowOf(kc).claimedUnits, 30);
    }

    function test_SkipsAClaimOvertakenByADirectOne() public {
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(seller, "a");
        (UsageEscrow.Activation memory b, bytes32 kb) = _agreement(seller, "b");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](2);
        claims[0] = _claimOf(a, sellerKey, 10);
        claims[1] = _claimOf(b, sellerKey, 20);

        // The seller claims `a` itself first, past what the queued claim asks.
        bytes memory voucher = _signVoucher(buyerKey, a, 15);
        vm.prank(seller);
        escrow.sellerClaim(a, 15, voucher);

        uint256 sellerBefore = usdc.balanceOf(seller);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.ClaimSkipped(ka, 10, UsageEscrow.SkipReason.NothingToClaim);
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);

        assertEq(usdc.balanceOf(seller) - sellerBefore, 20 * b.unitPrice, "only b is paid");
        assertEq(escrow.escrowOf(ka).claimedUnits, 15, "a is not moved back");
        assertEq(escrow.escrowOf(kb).claimedUnits, 20);
    }

    function test_ReplayedBatchPaysNothing() public {
        (UsageEscrow.Activation memory a,) = _agreement(seller, "a");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](1);
        claims[0] = _claimOf(a, sellerKey, 10);
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);

        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);
        assertEq(usdc.balanceOf(address(escrow)), escrowBefore);
    }

    function test_ClaimReachingQuantitySettles() public {
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(seller, "a");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](1);
        claims[0] = _claimOf(a, sellerKey, a.quantity);
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);
        UsageEscrow.Escrow memory e = escrow.escrowOf(ka);
        assertEq(uint256(e.status), uint256(UsageEscrow.Status.Settled));
        assertTrue(e.buyerWithdrawn, "nothing is left for the buyer");
    }

    // ---------------------------------------------------------------- a bad claim is skipped

    /// @dev Runs a batch of a good claim on `a` (10 units) around `bad`, a claim on `b` that must be
    /// skipped for `reason`: `a` and `c` are paid, `b` is left as it was.
    function _assertSkippedBetweenPaidClaims(UsageEscrow.SponsoredClaim memory bad, UsageEscrow.SkipReason reason)
        internal
    {
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(seller, "a");
        (UsageEscrow.Activation memory c, bytes32 kc) = _agreement(seller2, "c");
        bytes32 kb = _keyOf(bad.terms);
        bytes32 bBefore = _stateOf(kb);
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](3);
        claims[0] = _claimOf(a, sellerKey, 10);
        claims[1] = bad;
        claims[2] = _claimOf(c, seller2Key, 30);
        uint256 sellerBefore = usdc.balanceOf(seller);
        uint256 escrowBefore = usdc.balanceOf(address(escrow));

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.ClaimSkipped(kb, bad.cumulativeUnits, reason);
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);

        assertEq(usdc.balanceOf(seller) - sellerBefore, 10 * a.unitPrice, "the good claim before is paid");
        assertEq(usdc.balanceOf(seller2), 30 * c.unitPrice, "the good claim after is paid");
        assertEq(escrowBefore - usdc.balanceOf(address(escrow)), 40 * a.unitPrice, "only the good claims left");
        assertEq(escrow.escrowOf(ka).claimedUnits, 10);
        assertEq(escrow.escrowOf(kc).claimedUnits, 30);
        assertEq(_stateOf(kb), bBefore, "b unchanged");
    }

    function test_SkipsAClaimAuthorizedByTheBuyer() public {
        (UsageEscrow.Activation memory b,) = _agreement(seller, "b");
        _assertSkippedBetweenPaidClaims(_claimOf(b, buyerKey, 20), UsageEscrow.SkipReason.InvalidAuthorization);
    }

    function test_SkipsAnAuthorizationForOtherUnits() public {
        (UsageEscrow.Activation memory b,) = _agreement(seller, "b");
        UsageEscrow.SponsoredClaim memory bad = _claimOf(b, sellerKey, 20);
        bad.authorization = _signClaim(sellerKey, b, 21, bad.deadline);
        _assertSkippedBetweenPaidClaims(bad, UsageEscrow.SkipReason.InvalidAuthorization);
    }

    function test_SkipsAnExpiredAuthorization() public {
        (UsageEscrow.Activation memory b,) = _agreement(seller, "b");
        UsageEscrow.SponsoredClaim memory bad = _claimOf(b, sellerKey, 20);
        bad.deadline = block.timestamp - 1;
        bad.authorization = _signClaim(sellerKey, b, 20, bad.deadline);
        _assertSkippedBetweenPaidClaims(bad, UsageEscrow.SkipReason.InvalidAuthorization);
    }

    /// At the deadline the authorization still holds; one second later it is skipped.
    function test_AuthorizationAtItsDeadlineIsPaid() public {
        (UsageEscrow.Activation memory b, bytes32 kb) = _agreement(seller, "b");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](1);
        claims[0] = _claimOf(b, sellerKey, 20);
        vm.warp(claims[0].deadline);
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);
        assertEq(escrow.escrowOf(kb).claimedUnits, 20);
    }

    function test_SkipsAVoucherForOtherUnits() public {
        (UsageEscrow.Activation memory b,) = _agreement(seller, "b");
        UsageEscrow.SponsoredClaim memory bad = _claimOf(b, sellerKey, 20);
        bad.voucherSignature = _signVoucher(buyerKey, b, 19);
        _assertSkippedBetweenPaidClaims(bad, UsageEscrow.SkipReason.InvalidVoucher);
    }

    function test_SkipsAVoucherSignedByTheSeller() public {
        (UsageEscrow.Activation memory b,) = _agreement(seller, "b");
        UsageEscrow.SponsoredClaim memory bad = _claimOf(b, sellerKey, 20);
        bad.voucherSignature = _signVoucher(sellerKey, b, 20);
        _assertSkippedBetweenPaidClaims(bad, UsageEscrow.SkipReason.InvalidVoucher);
    }

    function test_SkipsUnitsAboveQuantity() public {
        (UsageEscrow.Activation memory b,) = _agreement(seller, "b");
        _assertSkippedBetweenPaidClaims(_claimOf(b, sellerKey, b.quantity + 1), UsageEscrow.SkipReason.InvalidVoucher);
    }

    function test_SkipsAClaimOnUnknownTerms() public {
        UsageEscrow.Activation memory b = _terms();
        b.salt = keccak256("never activated");
        _assertSkippedBetweenPaidClaims(_claimOf(b, sellerKey, 20), UsageEscrow.SkipReason.NothingToClaim);
    }

    function test_SkipsAClaimAfterTheBuyerWithdrew() public {
        (UsageEscrow.Activation memory b,) = _agreement(seller, "b");
        vm.warp(b.expiry + b.closeWindow);
        _withdrawAsBuyer(b);
        _assertSkippedBetweenPaidClaims(_claimOf(b, sellerKey, 20), UsageEscrow.SkipReason.NothingToClaim);
    }
}
