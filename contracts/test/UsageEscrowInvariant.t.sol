// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {EscrowHandler} from "./utils/EscrowHandler.sol";
import {FeeHandler} from "./utils/FeeHandler.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";

/// @notice Invariants of the escrow under random sequences of activations, vouchers, closes,
/// claims (direct, sponsored, through `batch` and `sellerClaimBatch`), withdrawals and time warps
/// by several buyers and sellers (see EscrowHandler), and of fee withdrawals and fee-recipient
/// changes (see FeeHandler). Money is tracked by ghost sums of measured balance changes.
contract UsageEscrowInvariantTest is EscrowFixture {
    /// @dev The shape forge reads from `targetSelectors()`.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    uint256 internal constant ACTORS = 3;
    /// @dev Each buyer's starting balance: room for 64 deposits at the largest allowed terms.
    uint256 internal constant FUNDS = 2 ** 250;

    EscrowHandler internal handler;
    FeeHandler internal feeHandler;
    uint256 internal escrowStart;
    uint256[] internal recipientStart;

    function setUp() public override {
        super.setUp();
        uint256[ACTORS] memory buyerKeys;
        uint256[ACTORS] memory sellerKeys;
        for (uint256 i; i < ACTORS; ++i) {
            (, buyerKeys[i]) = makeAddrAndKey(string.concat("inv-buyer-", Strings.toString(i)));
            (, sellerKeys[i]) = makeAddrAndKey(string.concat("inv-seller-", Strings.toString(i)));
        }
        handler = new EscrowHandler(escrow, usdc, relayer, buyerKeys, sellerKeys);
        address[] memory others = new address[](2 * ACTORS + 2);
        for (uint256 i; i < ACTORS; ++i) {
            usdc.mint(handler.buyers(i), FUNDS);
            others[2 * i] = handler.buyers(i);
            others[2 * i + 1] = handler.sellers(i);
        }
        others[2 * ACTORS] = relayer;
        others[2 * ACTORS + 1] = address(0x5757);
        feeHandler = new FeeHandler(escrow, usdc, others);
        escrowStart = usdc.balanceOf(address(escrow));
        for (uint256 i; i < feeHandler.RECIPIENTS(); ++i) {
            recipientStart.push(usdc.balanceOf(feeHandler.recipients(i)));
        }
        targetContract(address(handler));
        targetContract(address(feeHandler));
    }

    /// @notice Only the handlers' actions are fuzzed (not their views, nor `drain`).
    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory selectors = new bytes4[](9);
        selectors[0] = EscrowHandler.activate.selector;
        selectors[1] = EscrowHandler.recordVoucher.selector;
        selectors[2] = EscrowHandler.claim.selector;
        selectors[3] = EscrowHandler.batchClaims.selector;
        selectors[4] = EscrowHandler.close.selector;
        selectors[5] = EscrowHandler.withdraw.selector;
        selectors[6] = EscrowHandler.warp.selector;
        selectors[7] = EscrowHandler.warpToBoundary.selector;
        selectors[8] = EscrowHandler.claimBatch.selector;
        bytes4[] memory feeSelectors = new bytes4[](2);
        feeSelectors[0] = FeeHandler.withdrawFees.selector;
        feeSelectors[1] = FeeHandler.setFeeRecipient.selector;
        targets = new FuzzSelector[](2);
        targets[0] = FuzzSelector(address(handler), selectors);
        targets[1] = FuzzSelector(address(feeHandler), feeSelectors);
    }

    // ---------------------------------------------------------------- invariants

    /// @notice The escrow holds exactly the deposits and fees taken in minus everything paid out;
    /// the accrued fees are the fees taken minus those withdrawn, and each fee recipient received
    /// exactly the withdrawals made while it held the role.
    function invariant_escrowBalanceMatchesGhosts() public view {
        uint256 feesWithdrawn = feeHandler.ghostFeesWithdrawn();
        assertEq(
            usdc.balanceOf(address(escrow)),
            escrowStart + handler.ghostDeposits() + handler.ghostFees() - handler.ghostPaidToSellers()
                - handler.ghostPaidToBuyers() - feesWithdrawn,
            "escrow balance == deposits + fees - claims - withdrawals - fee withdrawals"
        );
        assertEq(escrow.accruedFees(), handler.ghostFees() - feesWithdrawn, "accrued == fees taken - withdrawn");
        for (uint256 i; i < recipientStart.length; ++i) {
            address r = feeHandler.recipients(i);
            assertEq(usdc.balanceOf(r), recipientStart[i] + feeHandler.ghostFeesWithdrawnTo(r), "recipient paid");
        }
        assertEq(escrow.feeRecipient(), feeHandler.recipient(), "fee recipient as modelled");
    }

    /// @notice The escrow's token balance is exactly what it owes: every agreement's deposit not
    /// yet claimed by the seller nor withdrawn by the buyer, plus the accrued fees.
    function invariant_escrowHoldsOpenDepositsPlusAccruedFees() public view {
        uint256 open;
        uint256 n = handler.agreementCount();
        for (uint256 i; i < n; ++i) {
            (,, uint256 deposit, uint256 paidToSeller, uint256 paidToBuyer,) = handler.agreementAt(i);
            open += deposit - paidToSeller - paidToBuyer;
        }
        assertEq(
            usdc.balanceOf(address(escrow)),
            escrowStart + open + escrow.accruedFees(),
            "balance == open deposits + accrued fees"
        );
    }

    /// @notice Per agreement, seller and buyer together never receive more than its deposit; each
    /// receives exactly its share so far; per party, never more than its agreements' deposits.
    function invariant_noOneReceivesMoreThanTheDeposits() public view {
        uint256 n = handler.agreementCount();
        for (uint256 i; i < n; ++i) {
            (
                UsageEscrow.Activation memory t,
                bytes32 key,
                uint256 deposit,
                uint256 paidToSeller,
                uint256 paidToBuyer,
            ) = handler.agreementAt(i);
            UsageEscrow.Escrow memory e = escrow.escrowOf(key);
            assertLe(paidToSeller + paidToBuyer, deposit, "paid <= deposit");
            assertEq(paidToSeller, uint256(e.claimedUnits) * t.unitPrice, "seller: claimed x p");
            assertEq(
                paidToBuyer,
                e.buyerWithdrawn ? (t.quantity - e.claimedUnits) * t.unitPrice : 0,
                "buyer got the rest only once withdrawn"
            );
        }
        for (uint256 i; i < ACTORS; ++i) {
            address b = handler.buyers(i);
            address s = handler.sellers(i);
            assertLe(handler.ghostReceived(b), handler.ghostDepositsOf(b), "buyer <= deposits");
            assertLe(handler.ghostReceived(s), handler.ghostDepositsOf(s), "seller <= deposits");
            assertEq(usdc.balanceOf(s), handler.ghostReceived(s), "seller balance is its claims");
            assertEq(
                usdc.balanceOf(b),
                FUNDS - handler.ghostDepositsOf(b) - handler.ghostFeesPaidBy(b) + handler.ghostReceived(b),
                "buyer balance is funds - deposits - fees + refunds"
            );
        }
    }

    /// @notice A settled agreement whose buyer is done has paid out exactly its deposit.
    function invariant_settledAndWithdrawnPaysExactlyTheDeposit() public view {
        uint256 n = handler.agreementCount();
        for (uint256 i; i < n; ++i) {
            (, bytes32 key, uint256 deposit, uint256 paidToSeller, uint256 paidToBuyer,) = handler.agreementAt(i);
            UsageEscrow.Escrow memory e = escrow.escrowOf(key);
            if (e.status == UsageEscrow.Status.Settled && e.buyerWithdrawn) {
                assertEq(paidToSeller + paidToBuyer, deposit, "claimed + withdrawn == deposit");
            }
        }
    }

    /// @notice claimedUnits never goes down (checked by the handler after every call) and never
    /// exceeds quantity.
    function invariant_claimedUnitsMonotonicAndBounded() public view {
        assertEq(handler.claimedUnitsDecreases(), 0, handler.firstFailure());
        uint256 n = handler.agreementCount();
        for (uint256 i; i < n; ++i) {
            (UsageEscrow.Activation memory t, bytes32 key,,,, uint256 highest) = handler.agreementAt(i);
            uint256 claimed = escrow.escrowOf(key).claimedUnits;
            assertGe(claimed, highest, "claimedUnits below a value seen before");
            assertLe(claimed, t.quantity, "claimedUnits <= quantity");
        }
    }

    /// @notice Every call did what the documented rules predict: success, or the exact error.
    function invariant_everyOutcomeAsDocumented() public view {
        string memory why = handler.firstFailure();
        assertEq(handler.unexpectedReverts(), 0, why);
        assertEq(handler.unexpectedSuccesses(), 0, why);
        assertEq(handler.wrongErrors(), 0, why);
        assertEq(handler.modelMismatches(), 0, why);
        assertEq(handler.paymentMismatches(), 0, why);
        assertEq(feeHandler.failures(), 0, feeHandler.firstFailure());
    }

    /// @notice At the end of each run every agreement is wound up (claims of the highest vouchers,
    /// then withdrawals): each paid out exactly its deposit and the escrow is back where it began.
    function afterInvariant() public {
        handler.drain();
        feeHandler.drain();
        invariant_everyOutcomeAsDocumented();
        _assertAllSettledExactly();
    }

    // ---------------------------------------------------------------- every path is reached

    /// @notice A long deterministic pseudo-random sequence takes every path of the handler at
    /// least once (so the invariant runs are not vacuous), with the invariants holding throughout.
    function test_handlerExercisesEveryPath() public {
        for (uint256 step; step < 1000; ++step) {
            _randomAction(uint256(keccak256(abi.encode("pactum", step))));
            if (step % 50 == 49) _assertInvariants();
        }
        for (uint256 path; path < handler.PATHS(); ++path) {
            assertGt(handler.hitsOf(path), 0, string.concat("path never taken: ", Strings.toString(path)));
        }
        for (uint256 path; path < feeHandler.PATHS(); ++path) {
            assertGt(feeHandler.hitsOf(path), 0, string.concat("fee path never taken: ", Strings.toString(path)));
        }
        assertGt(handler.agreementCount(), 20, "agreements");
        _assertInvariants();
        handler.drain();
        feeHandler.drain();
        invariant_everyOutcomeAsDocumented();
        _assertAllSettledExactly();
    }

    function _randomAction(uint256 r) internal {
        uint256 a = uint256(keccak256(abi.encode(r, 1)));
        uint256 b = uint256(keccak256(abi.encode(r, 2)));
        uint256 c = uint256(keccak256(abi.encode(r, 3)));
        uint256 action = r % 21;
        if (action == 20) {
            feeHandler.setFeeRecipient(a, b);
        } else if (action == 19) {
            feeHandler.withdrawFees(a, b);
        } else if (action >= 16) {
            handler.claimBatch(a, b, c);
        } else if (action < 2) {
            uint256 d = uint256(keccak256(abi.encode(r, 4)));
            handler.activate(a, b, c, d, a >> 128, b >> 128);
        } else if (action < 5) {
            handler.recordVoucher(a, b);
        } else if (action < 8) {
            handler.claim(a, b, c);
        } else if (action < 9) {
            handler.batchClaims(a, b, c % 2 == 0);
        } else if (action < 11) {
            handler.close(a, b, c);
        } else if (action < 13) {
            handler.withdraw(a, b % 2 == 0);
        } else if (action < 15) {
            handler.warp(a % 4 == 0 ? a : a % 6 hours);
        } else {
            handler.warpToBoundary(a, b);
        }
    }

    function _assertInvariants() internal view {
        invariant_escrowBalanceMatchesGhosts();
        invariant_escrowHoldsOpenDepositsPlusAccruedFees();
        invariant_noOneReceivesMoreThanTheDeposits();
        invariant_settledAndWithdrawnPaysExactlyTheDeposit();
        invariant_claimedUnitsMonotonicAndBounded();
        invariant_everyOutcomeAsDocumented();
    }

    function _assertAllSettledExactly() internal view {
        _assertInvariants();
        uint256 n = handler.agreementCount();
        for (uint256 i; i < n; ++i) {
            (, bytes32 key, uint256 deposit, uint256 paidToSeller, uint256 paidToBuyer,) = handler.agreementAt(i);
            UsageEscrow.Escrow memory e = escrow.escrowOf(key);
            assertTrue(e.status == UsageEscrow.Status.Settled, "settled at the end");
            assertTrue(e.buyerWithdrawn, "buyer done at the end");
            assertEq(paidToSeller + paidToBuyer, deposit, "each agreement paid out its deposit");
        }
        assertEq(escrow.accruedFees(), 0, "every fee withdrawn");
        assertEq(usdc.balanceOf(address(escrow)), escrowStart, "escrow emptied of these deposits and fees");
    }
}
