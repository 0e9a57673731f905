// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

import {BatchFixture} from "./utils/BatchFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";
import {IFiatToken} from "../src/interfaces/IFiatToken.sol";
import {HaltableUSDC} from "./mocks/HaltableUSDC.sol";

/// @notice `sellerClaimBatch` isolates payouts the token refuses: a blacklisted seller's claims
/// (every claim of its run) are rolled back and skipped with `PayoutRefused`, the other sellers
/// are paid, and the skipped claims stay claimable. A paused token skips everything.
contract UsageEscrowBatchIsolationTest is BatchFixture {
    uint256 internal constant SELLERS = 20;
    uint256 internal constant PRICE = 100_000;

    address[SELLERS] internal sellers;
    uint256[SELLERS] internal sellerKeys;

    function setUp() public override {
        super.setUp();
        for (uint256 i; i < SELLERS; ++i) {
            (sellers[i], sellerKeys[i]) = makeAddrAndKey(string.concat("batch-seller-", Strings.toString(i)));
        }
    }

    /// @dev One agreement per seller and a claim of `10 + i` units on each.
    function _twentySellers()
        internal
        returns (UsageEscrow.SponsoredClaim[] memory claims, bytes32[SELLERS] memory keys)
    {
        claims = new UsageEscrow.SponsoredClaim[](SELLERS);
        for (uint256 i; i < SELLERS; ++i) {
            UsageEscrow.Activation memory t;
            (t, keys[i]) = _agreement(sellers[i], Strings.toString(i));
            claims[i] = _claimOf(t, sellerKeys[i], 10 + i);
        }
    }

    // ---------------------------------------------------------------- blacklisted seller

    function test_BlacklistedSellerInABatchOfTwentyDoesNotStopTheOthers() public {
        (UsageEscrow.SponsoredClaim[] memory claims, bytes32[SELLERS] memory keys) = _twentySellers();
        uint256 blocked = 7;
        usdc.blacklist(sellers[blocked]);
        bytes32 blockedBefore = _stateOf(keys[blocked]);
        uint256 escrowBefore = usdc.balanceOf(address(escrow));

        Vm.Log[] memory logs = _runBatch(claims);

        uint256 paid;
        for (uint256 i; i < SELLERS; ++i) {
            if (i == blocked) continue;
            assertEq(usdc.balanceOf(sellers[i]), (10 + i) * PRICE, "the other sellers are paid");
            assertEq(escrow.escrowOf(keys[i]).claimedUnits, 10 + i);
            paid += (10 + i) * PRICE;
        }
        assertEq(escrowBefore - usdc.balanceOf(address(escrow)), paid, "only the 19 left the escrow");
        assertEq(_stateOf(keys[blocked]), blockedBefore, "the blacklisted seller's agreement is unchanged");
        assertEq(_countClaimed(logs), SELLERS - 1, "19 UsageClaimed");
        assertEq(_countSkipped(logs, keys[blocked], UsageEscrow.SkipReason.PayoutRefused), 1, "skipped as refused");
        assertEq(_countAllSkipped(logs), 1, "nothing else skipped");

        // Once the token lifts the blacklist, the very same claim pays.
        usdc.unBlacklist(sellers[blocked]);
        UsageEscrow.SponsoredClaim[] memory again = new UsageEscrow.SponsoredClaim[](1);
        again[0] = claims[blocked];
        _runBatch(again);
        assertEq(usdc.balanceOf(sellers[blocked]), (10 + blocked) * PRICE, "claimable later");
        assertEq(escrow.escrowOf(keys[blocked]).claimedUnits, 10 + blocked);
    }

    /// A run of one blacklisted seller (three agreements, one claimed twice, one to full quantity)
    /// between two other sellers' claims: every claim of the run is rolled back, the agreement
    /// it would have settled included, and the neighbours are paid.
    function test_RunOfABlacklistedSellerIsRolledBackAsAWhole() public {
        (UsageEscrow.Activation memory before_,) = _agreement(sellers[0], "before");
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(seller, "a");
        (UsageEscrow.Activation memory b, bytes32 kb) = _agreement(seller, "b");
        (UsageEscrow.Activation memory c, bytes32 kc) = _agreement(seller, "c");
        (UsageEscrow.Activation memory after_,) = _agreement(sellers[1], "after");
        _claim(a, 5); // a starts from 5 claimed units
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](6);
        claims[0] = _claimOf(before_, sellerKeys[0], 10);
        claims[1] = _claimOf(a, sellerKey, 20);
        claims[2] = _claimOf(a, sellerKey, 30);
        claims[3] = _claimOf(b, sellerKey, b.quantity);
        claims[4] = _claimOf(c, sellerKey, 40);
        claims[5] = _claimOf(after_, sellerKeys[1], 50);
        bytes32[3] memory states = [_stateOf(ka), _stateOf(kb), _stateOf(kc)];
        uint256 sellerBefore = usdc.balanceOf(seller);
        usdc.blacklist(seller);

        Vm.Log[] memory logs = _runBatch(claims);

        assertEq(usdc.balanceOf(sellers[0]), 10 * PRICE, "the seller before the run is paid");
        assertEq(usdc.balanceOf(sellers[1]), 50 * PRICE, "the seller after the run is paid");
        assertEq(usdc.balanceOf(seller), sellerBefore, "the blacklisted seller got nothing");
        assertEq(_stateOf(ka), states[0], "a back at 5 units, through both of its claims");
        assertEq(_stateOf(kb), states[1], "b not settled");
        assertEq(_stateOf(kc), states[2], "c unchanged");
        assertEq(escrow.escrowOf(ka).claimedUnits, 5);
        assertEq(_countSkipped(logs, ka, UsageEscrow.SkipReason.PayoutRefused), 2, "a's two claims");
        assertEq(_countSkipped(logs, kb, UsageEscrow.SkipReason.PayoutRefused), 1, "b's claim");
        assertEq(_countSkipped(logs, kc, UsageEscrow.SkipReason.PayoutRefused), 1, "c's claim");
        assertEq(_countClaimed(logs), 2, "only the neighbours' UsageClaimed");

        // Unblacklisted, the same batch pays the run (the neighbours' claims are now skipped).
        usdc.unBlacklist(seller);
        _runBatch(claims);
        assertEq(usdc.balanceOf(seller), sellerBefore + (25 + b.quantity + 40) * PRICE, "the run is paid");
        assertEq(escrow.escrowOf(ka).claimedUnits, 30);
        assertTrue(_status(kb) == UsageEscrow.Status.Settled, "b settled at full quantity");
        assertEq(escrow.escrowOf(kc).claimedUnits, 40);
    }

    /// A seller whose claims are split into two runs by another seller's refused one is paid for
    /// both runs.
    function test_RefusedSellerBetweenTwoRunsOfAnother() public {
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(seller, "a");
        (UsageEscrow.Activation memory b, bytes32 kb) = _agreement(sellers[0], "b");
        (UsageEscrow.Activation memory c, bytes32 kc) = _agreement(seller, "c");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](3);
        claims[0] = _claimOf(a, sellerKey, 10);
        claims[1] = _claimOf(b, sellerKeys[0], 20);
        claims[2] = _claimOf(c, sellerKey, 30);
        uint256 sellerBefore = usdc.balanceOf(seller);
        usdc.blacklist(sellers[0]);

        Vm.Log[] memory logs = _runBatch(claims);

        assertEq(usdc.balanceOf(seller), sellerBefore + 40 * PRICE);
        assertEq(escrow.escrowOf(ka).claimedUnits, 10);
        assertEq(escrow.escrowOf(kb).claimedUnits, 0);
        assertEq(escrow.escrowOf(kc).claimedUnits, 30);
        assertEq(_countSkipped(logs, kb, UsageEscrow.SkipReason.PayoutRefused), 1);
    }

    // ---------------------------------------------------------------- paused token

    function test_PausedTokenSkipsEveryClaimAndChangesNothing() public {
        HaltableUSDC token = HaltableUSDC(address(_behindProxy(new HaltableUSDC())));
        usdc = token;
        escrow = _deployEscrow(IFiatToken(address(token)));
        token.mint(buyer, 1_000_000 * USDC);
        (UsageEscrow.SponsoredClaim[] memory claims, bytes32[SELLERS] memory keys) = _twentySellers();
        bytes32[SELLERS] memory states;
        for (uint256 i; i < SELLERS; ++i) {
            states[i] = _stateOf(keys[i]);
        }
        uint256 escrowBefore = token.balanceOf(address(escrow));
        token.setHalted(true);

        Vm.Log[] memory logs = _runBatch(claims);

        for (uint256 i; i < SELLERS; ++i) {
            assertEq(_stateOf(keys[i]), states[i], "nothing changed");
            assertEq(_countSkipped(logs, keys[i], UsageEscrow.SkipReason.PayoutRefused), 1, "skipped as refused");
        }
        assertEq(_countClaimed(logs), 0, "nothing claimed");
        assertEq(token.balanceOf(address(escrow)), escrowBefore, "nothing left the escrow");

        // Unpaused, the same batch pays every claim.
        token.setHalted(false);
        _runBatch(claims);
        for (uint256 i; i < SELLERS; ++i) {
            assertEq(token.balanceOf(sellers[i]), (10 + i) * PRICE, "paid after the pause");
        }
    }

    // ---------------------------------------------------------------- same claim twice

    function test_SameClaimTwiceInOneBatchPaysOnce() public {
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(seller, "a");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](2);
        claims[0] = _claimOf(a, sellerKey, 30);
        claims[1] = claims[0];
        uint256 sellerBefore = usdc.balanceOf(seller);

        Vm.Log[] memory logs = _runBatch(claims);

        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE, "paid once");
        assertEq(escrow.escrowOf(ka).claimedUnits, 30);
        assertEq(_countClaimed(logs), 1);
        assertEq(_countSkipped(logs, ka, UsageEscrow.SkipReason.NothingToClaim), 1, "the repeat is skipped");
        _assertEscrowHolds(70 * PRICE);
    }

    /// The same claim again after another seller's claim (so in a run of its own) pays once too.
    function test_SameClaimTwiceInTwoRunsPaysOnce() public {
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(seller, "a");
        (UsageEscrow.Activation memory b,) = _agreement(sellers[0], "b");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](3);
        claims[0] = _claimOf(a, sellerKey, 30);
        claims[1] = _claimOf(b, sellerKeys[0], 10);
        claims[2] = claims[0];
        uint256 sellerBefore = usdc.balanceOf(seller);

        Vm.Log[] memory logs = _runBatch(claims);

        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE, "paid once");
        assertEq(usdc.balanceOf(sellers[0]), 10 * PRICE);
        assertEq(_countSkipped(logs, ka, UsageEscrow.SkipReason.NothingToClaim), 1, "the repeat is skipped");
    }

    /// Two growing claims of one agreement in one run pay the higher one's units in all.
    function test_GrowingClaimsOfOneAgreementPayTheHighest() public {
        (UsageEscrow.Activation memory a, bytes32 ka) = _agreement(seller, "a");
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](3);
        claims[0] = _claimOf(a, sellerKey, 30);
        claims[1] = _claimOf(a, sellerKey, 50);
        claims[2] = _claimOf(a, sellerKey, 40);
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.ClaimSkipped(ka, 40, UsageEscrow.SkipReason.NothingToClaim);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.UsageClaimed(ka, seller, 30, 30 * PRICE);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.UsageClaimed(ka, seller, 50, 20 * PRICE);
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);

        assertEq(usdc.balanceOf(seller), sellerBefore + 50 * PRICE);
        assertEq(escrow.escrowOf(ka).claimedUnits, 50);
    }

    function test_EmptyBatchDoesNothing() public {
        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        Vm.Log[] memory logs = _runBatch(new UsageEscrow.SponsoredClaim[](0));
        assertEq(logs.length, 0);
        assertEq(usdc.balanceOf(address(escrow)), escrowBefore);
    }
}
