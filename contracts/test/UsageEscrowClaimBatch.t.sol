// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";

/// @notice `sellerClaimBatch`: many sponsored claims in one transaction, paid per seller.
contract UsageEscrowClaimBatchTest is EscrowFixture {
    address internal seller2;
    uint256 internal seller2Key;

    function setUp() public override {
        super.setUp();
        (seller2, seller2Key) = makeAddrAndKey("seller2");
    }

    function _agreement(address seller_, string memory salt)
        internal
        returns (UsageEscrow.Activation memory t, bytes32 key)
    {
        t = _terms();
        t.seller = seller_;
        t.salt = keccak256(bytes(salt));
        key = _activate(t);
    }

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
        vm.expectEmit(true, false, false, true, address(escrow));
        emit UsageEscrow.ClaimSkipped(ka, 10);
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

    function test_RevertWhen_AClaimIsAuthorizedByTheBuyer() public {
        (UsageEscrow.Activation memory a,) = _agreement(seller, "a");
        (UsageEscrow.Activation memory b,) = _agreement(seller, "b");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](2);
        claims[0] = _claimOf(a, sellerKey, 10);
        claims[1] = _claimOf(b, buyerKey, 20);
        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        vm.expectRevert(UsageEscrow.InvalidSignature.selector);
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);
        assertEq(usdc.balanceOf(address(escrow)), escrowBefore, "nothing moved");
    }

    function test_RevertWhen_AVoucherIsForOtherUnits() public {
        (UsageEscrow.Activation memory a,) = _agreement(seller, "a");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](1);
        claims[0] = _claimOf(a, sellerKey, 10);
        claims[0].voucherSignature = _signVoucher(buyerKey, a, 9);
        vm.expectRevert(UsageEscrow.InvalidSignature.selector);
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);
    }

    function test_RevertWhen_AnAuthorizationExpired() public {
        (UsageEscrow.Activation memory a,) = _agreement(seller, "a");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](1);
        claims[0] = _claimOf(a, sellerKey, 10);
        vm.warp(claims[0].deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.AuthorizationExpired.selector, claims[0].deadline));
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);
    }

    function test_RevertWhen_UnitsExceedQuantity() public {
        (UsageEscrow.Activation memory a,) = _agreement(seller, "a");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](1);
        claims[0] = _claimOf(a, sellerKey, a.quantity + 1);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.UnitsExceedQuantity.selector, a.quantity + 1, a.quantity));
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);
    }
}
