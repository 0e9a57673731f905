// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

import {BatchFixture} from "./utils/BatchFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";
import {MockSmartWallet} from "../src/mocks/MockSmartWallet.sol";
import {GasBurningWallet, HugeAnswerWallet, SwitchableWallet} from "./mocks/HostileWallets.sol";

/// @notice Smart-wallet parties in `sellerClaimBatch`: a wallet whose `isValidSignature` burns all
/// the gas it gets, or answers with a huge return value, fails its own check within the escrow's
/// ERC-1271 gas allowance; its claim is skipped, the others are paid, and the batch costs at most
/// that allowance (plus the claim's own checks) more than without it.
contract UsageEscrowBatchWalletsTest is BatchFixture {
    uint256 internal constant GOOD = 19;
    uint256 internal constant PRICE = 100_000;
    /// @dev What one claim's own work costs beyond its signature check: decoding, the key,
    /// the state read, the ECDSA attempt and the ClaimSkipped log.
    uint256 internal constant CLAIM_MARGIN = 20_000;

    uint256 internal cap;
    UsageEscrow.SponsoredClaim[] internal good;

    function setUp() public override {
        super.setUp();
        cap = escrow.ERC1271_GAS_LIMIT();
        for (uint256 i; i < GOOD; ++i) {
            (UsageEscrow.Activation memory t,) = _agreement(seller, string.concat("good-", Strings.toString(i)));
            good.push(_claimOf(t, sellerKey, 10));
        }
    }

    // ---------------------------------------------------------------- helpers

    /// @dev An agreement whose seller is `wallet` (signing with the seller's key).
    function _walletSeller(SwitchableWallet wallet)
        internal
        returns (UsageEscrow.SponsoredClaim memory claim, bytes32 key)
    {
        UsageEscrow.Activation memory t;
        (t, key) = _agreement(address(wallet), "wallet-seller");
        claim = _claimOf(t, sellerKey, 30);
    }

    /// @dev An agreement whose buyer is `wallet` (signing with the buyer's key), activated while the
    /// wallet is honest.
    function _walletBuyer(SwitchableWallet wallet)
        internal
        returns (UsageEscrow.SponsoredClaim memory claim, bytes32 key)
    {
        usdc.mint(address(wallet), 100 * USDC);
        UsageEscrow.Activation memory t = _terms();
        t.buyer = address(wallet);
        t.salt = keccak256("wallet-buyer");
        key = _activate(t);
        claim = _claimOf(t, sellerKey, 30);
    }

    /// @dev The gas of the relayer's `sellerClaimBatch(claims)` as seen from this contract.
    function _gasOf(UsageEscrow.SponsoredClaim[] memory claims) internal returns (uint256 used) {
        vm.prank(relayer);
        used = gasleft();
        escrow.sellerClaimBatch(claims);
        used -= gasleft();
    }

    /// @dev The 19 good claims with `extra` in the middle.
    function _withClaim(UsageEscrow.SponsoredClaim memory extra)
        internal
        view
        returns (UsageEscrow.SponsoredClaim[] memory claims)
    {
        claims = new UsageEscrow.SponsoredClaim[](GOOD + 1);
        for (uint256 i; i < GOOD; ++i) {
            claims[i < GOOD / 2 ? i : i + 1] = good[i];
        }
        claims[GOOD / 2] = extra;
    }

    /// @dev Runs the 19 good claims alone, then (from the same state) with `hostile` among them:
    /// `hostile` is skipped for `reason`, its agreement unchanged, every good claim paid; returns
    /// how much more gas the batch used with it.
    function _extraGasOfHostileClaim(
        UsageEscrow.SponsoredClaim memory hostile,
        bytes32 hostileKey,
        UsageEscrow.SkipReason reason
    ) internal returns (uint256 extra) {
        bytes32 hostileBefore = _stateOf(hostileKey);
        uint256 sellerBefore = usdc.balanceOf(seller);
        uint256 snapshot = vm.snapshotState();
        uint256 alone = _gasOf(good);
        vm.revertToState(snapshot);

        vm.recordLogs();
        uint256 mixed = _gasOf(_withClaim(hostile));
        Vm.Log[] memory logs = vm.getRecordedLogs();

        assertEq(_countSkipped(logs, hostileKey, reason), 1, "the hostile party's claim is skipped");
        assertEq(_countAllSkipped(logs), 1, "only it");
        assertEq(_countClaimed(logs), GOOD, "every other claim is paid");
        assertEq(usdc.balanceOf(seller), sellerBefore + GOOD * 10 * PRICE, "the seller is paid for all 19");
        assertEq(_stateOf(hostileKey), hostileBefore, "the hostile agreement is unchanged");
        extra = mixed - alone;
    }

    // ---------------------------------------------------------------- gas-burning wallet

    function test_GasBurningSellerIsSkippedAndCostsTheBatchAtMostTheCap() public {
        GasBurningWallet wallet = new GasBurningWallet(seller);
        wallet.setHostile(true);
        (UsageEscrow.SponsoredClaim memory hostile, bytes32 key) = _walletSeller(wallet);

        uint256 extra = _extraGasOfHostileClaim(hostile, key, UsageEscrow.SkipReason.InvalidAuthorization);

        assertGt(extra, cap, "the wallet burnt all it was given");
        assertLt(extra, cap + CLAIM_MARGIN, "and no more");
    }

    function test_GasBurningBuyerIsSkippedAndCostsTheBatchAtMostTheCap() public {
        GasBurningWallet wallet = new GasBurningWallet(buyer);
        (UsageEscrow.SponsoredClaim memory hostile, bytes32 key) = _walletBuyer(wallet);
        wallet.setHostile(true);

        uint256 extra = _extraGasOfHostileClaim(hostile, key, UsageEscrow.SkipReason.InvalidVoucher);

        assertGt(extra, cap, "the wallet burnt all it was given");
        assertLt(extra, cap + CLAIM_MARGIN, "and no more");
    }

    /// The sponsored single claim fails with InvalidSignature, not out of gas, well within a
    /// modest gas limit.
    function test_RevertWhen_GasBurningSellerClaimsWithAuthorization() public {
        GasBurningWallet wallet = new GasBurningWallet(seller);
        wallet.setHostile(true);
        (UsageEscrow.SponsoredClaim memory c,) = _walletSeller(wallet);

        vm.prank(relayer);
        vm.expectRevert(UsageEscrow.InvalidSignature.selector);
        escrow.sellerClaimWithAuthorization{gas: cap + 60_000}(
            c.terms, c.cumulativeUnits, c.voucherSignature, c.deadline, c.authorization
        );
    }

    // ---------------------------------------------------------------- huge answer

    function test_HugeAnswerSellerIsSkippedAndItsAnswerIsNotCopied() public {
        HugeAnswerWallet wallet = new HugeAnswerWallet(seller);
        wallet.setHostile(true);
        (UsageEscrow.SponsoredClaim memory hostile, bytes32 key) = _walletSeller(wallet);

        uint256 extra = _extraGasOfHostileClaim(hostile, key, UsageEscrow.SkipReason.InvalidAuthorization);

        // The wallet pays some 88,000 for its answer's memory; copying it would cost the escrow
        // about as much again, and the sum would exceed the cap.
        assertGt(extra, 80_000, "the wallet built its huge answer");
        assertLt(extra, cap + CLAIM_MARGIN, "the escrow copied one word of it");
    }

    function test_HugeAnswerBuyerIsSkippedAndItsAnswerIsNotCopied() public {
        HugeAnswerWallet wallet = new HugeAnswerWallet(buyer);
        (UsageEscrow.SponsoredClaim memory hostile, bytes32 key) = _walletBuyer(wallet);
        wallet.setHostile(true);

        uint256 extra = _extraGasOfHostileClaim(hostile, key, UsageEscrow.SkipReason.InvalidVoucher);

        assertGt(extra, 80_000, "the wallet built its huge answer");
        assertLt(extra, cap + CLAIM_MARGIN, "the escrow copied one word of it");
    }

    // ---------------------------------------------------------------- honest wallets

    /// The cap leaves an ordinary smart wallet ample gas: its claims are paid in a batch, as a
    /// seller and as a buyer.
    function test_HonestSmartWalletPartiesArePaidInABatch() public {
        MockSmartWallet sellerWallet = new MockSmartWallet(seller);
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(address(sellerWallet), "wallet-seller");
        MockSmartWallet buyerWallet = new MockSmartWallet(buyer);
        usdc.mint(address(buyerWallet), 100 * USDC);
        UsageEscrow.Activation memory b = _terms();
        b.buyer = address(buyerWallet);
        b.salt = keccak256("wallet-buyer");
        bytes32 kb = _activate(b);
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](2);
        claims[0] = _claimOf(a, sellerKey, 30);
        claims[1] = _claimOf(b, sellerKey, 40);
        uint256 sellerBefore = usdc.balanceOf(seller);

        Vm.Log[] memory logs = _runBatch(claims);

        assertEq(_countAllSkipped(logs), 0);
        assertEq(usdc.balanceOf(address(sellerWallet)), 30 * PRICE);
        assertEq(usdc.balanceOf(seller), sellerBefore + 40 * PRICE);
        assertEq(escrow.escrowOf(ka).claimedUnits, 30);
        assertEq(escrow.escrowOf(kb).claimedUnits, 40);
    }
}
