// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";

/// @dev Cheatcodes this file needs beyond utils/Vm.sol.
interface GasVm {
    /// @notice Marks `target`'s storage cold again (in forge 1.7, not its account address).
    function cool(address target) external;
    /// @notice Records `value` under `name` in the snapshots file of this test contract.
    function snapshotValue(string calldata name, uint256 value) external;
    /// @notice The gas of the last call.
    function lastCallGas() external view returns (Gas memory);
}

/// @dev What `lastCallGas` returns.
struct Gas {
    uint64 gasLimit;
    uint64 gasTotalUsed;
    uint64 gasMemoryUsed;
    int64 gasRefunded;
    uint64 gasRemaining;
}

/// @notice Gas of the escrow's main actions, recorded with `vm.snapshotGasLastCall` into
/// `snapshots/UsageEscrowGasTest.json` (and each test's total in `.gas-snapshot`).
/// @dev Conditions are those of a live deployment, not of a fresh one: the escrow already holds
/// other deposits and accrued fees, the seller, the buyer and the fee recipient already hold USDC.
/// Everything a measured call needs (terms, signatures, earlier steps) is prepared in `setUp`,
/// which forge runs as a transaction of its own, so each measured call meets cold accounts and
/// slots like the first call of a real transaction. Figures are the gas
/// of the escrow call frame: they exclude the 21,000 base cost and the calldata of a transaction.
contract UsageEscrowGasTest is EscrowFixture {
    GasVm internal constant gasVm = GasVm(VM_ADDRESS);

    uint256 internal constant BATCH = 20;
    uint256 internal constant CLAIMED = 40;

    uint256 internal deadline;

    // Activation, not yet submitted.
    UsageEscrow.Activation internal noFeeTerms;
    bytes internal noFeeActivationSig;
    bytes internal noFeeFundingSig;
    UsageEscrow.Activation internal feeTerms;
    bytes internal feeActivationSig;
    bytes internal feeFundingSig;
    bytes internal feeAuthorizationSig;
    // The fee taken from an allowance the buyer gave the escrow beforehand.
    UsageEscrow.Activation internal allowanceTerms;
    bytes internal allowanceActivationSig;
    bytes internal allowanceFundingSig;

    // An active agreement, nothing claimed yet.
    UsageEscrow.Activation internal live;
    bytes internal liveVoucher;
    bytes internal liveClaimAuth;

    // An agreement with CLAIMED units paid, closed by the buyer, its window over.
    UsageEscrow.Activation internal closed;
    bytes internal closedWithdrawAuth;

    // BATCH active agreements of one seller and a sponsored claim for each, as `batch` calls and
    // as `sellerClaimBatch` entries.
    bytes[] internal sponsoredClaims;
    UsageEscrow.SponsoredClaim[] internal sellerClaimBatchArgs;
    uint256 internal sellerBalanceAtSetUp;
    uint256 internal feesAtSetUp;
    uint256 internal feeRecipientBalanceAtSetUp;

    function setUp() public override {
        super.setUp();
        // Deposits and fees of other agreements already in escrow.
        UsageEscrow.Activation memory other = _terms();
        other.salt = keccak256("other");
        _activate(other);

        // The agreement whose buyer withdraws: CLAIMED units paid, closed by the buyer, and its
        // close window over (this moves time one hour on for everything below).
        closed = _terms();
        closed.salt = keccak256("closed");
        closed.infraFee = 0;
        _activate(closed);
        bytes memory v = _signVoucher(buyerKey, closed, CLAIMED);
        vm.prank(seller);
        escrow.sellerClaim(closed, CLAIMED, v);
        vm.prank(buyer);
        escrow.initiateClose(closed, 0, "");
        vm.warp(block.timestamp + closed.closeWindow);
        deadline = block.timestamp + 1 hours;
        closedWithdrawAuth = _signWithdraw(buyerKey, closed, deadline);

        // Activations to submit.
        noFeeTerms = _terms();
        noFeeTerms.salt = keccak256("no-fee");
        noFeeTerms.infraFee = 0;
        noFeeActivationSig = _signActivation(buyerKey, noFeeTerms);
        noFeeFundingSig = _signFunding(buyerKey, noFeeTerms);
        feeTerms = _terms();
        feeTerms.salt = keccak256("fee");
        feeActivationSig = _signActivation(buyerKey, feeTerms);
        feeFundingSig = _signFunding(buyerKey, feeTerms);
        feeAuthorizationSig = _signFeeAuthorization(buyerKey, feeTerms);
        allowanceTerms = _terms();
        allowanceTerms.salt = keccak256("fee-allowance");
        allowanceActivationSig = _signActivation(buyerKey, allowanceTerms);
        allowanceFundingSig = _signFunding(buyerKey, allowanceTerms);
        vm.prank(buyer);
        usdc.approve(address(escrow), allowanceTerms.infraFee);

        // An active agreement to claim on and close.
        live = _terms();
        live.salt = keccak256("live");
        _activate(live);
        liveVoucher = _signVoucher(buyerKey, live, CLAIMED);
        liveClaimAuth = _signClaim(sellerKey, live, CLAIMED, deadline);

        // BATCH agreements of the same seller, each with a sponsored claim ready.
        for (uint256 i; i < BATCH; ++i) {
            UsageEscrow.Activation memory t = _terms();
            t.salt = keccak256(abi.encode("batch", i));
            _activate(t);
            UsageEscrow.SponsoredClaim memory c = UsageEscrow.SponsoredClaim({
                terms: t,
                cumulativeUnits: CLAIMED,
                voucherSignature: _signVoucher(buyerKey, t, CLAIMED),
                deadline: deadline,
                authorization: _signClaim(sellerKey, t, CLAIMED, deadline)
            });
            sellerClaimBatchArgs.push(c);
            sponsoredClaims.push(
                abi.encodeCall(
                    UsageEscrow.sellerClaimWithAuthorization,
                    (t, CLAIMED, c.voucherSignature, deadline, c.authorization)
                )
            );
        }

        // Read here, so that no measured test touches the token before its measured call.
        sellerBalanceAtSetUp = usdc.balanceOf(seller);
        feesAtSetUp = escrow.accruedFees();
        feeRecipientBalanceAtSetUp = usdc.balanceOf(feeRecipient);
    }

    // ---------------------------------------------------------------- activation

    function test_gas_activate_noFee() public {
        vm.prank(relayer);
        escrow.activate(noFeeTerms, noFeeActivationSig, noFeeFundingSig, "");
        vm.snapshotGasLastCall("activate_noFee");
        assertTrue(_status(_keyOf(noFeeTerms)) == UsageEscrow.Status.Active);
    }

    /// @notice The fee by the buyer's ReceiveWithAuthorization: a second signature check and nonce
    /// in the token, and the fee accrued in the escrow.
    function test_gas_activate_feeAuthorization() public {
        vm.prank(relayer);
        escrow.activate(feeTerms, feeActivationSig, feeFundingSig, feeAuthorizationSig);
        vm.snapshotGasLastCall("activate_feeAuthorization");
        assertTrue(_status(_keyOf(feeTerms)) == UsageEscrow.Status.Active);
    }

    function test_gas_activate_feeAllowance() public {
        vm.prank(relayer);
        escrow.activate(allowanceTerms, allowanceActivationSig, allowanceFundingSig, "");
        vm.snapshotGasLastCall("activate_feeAllowance");
        assertTrue(_status(_keyOf(allowanceTerms)) == UsageEscrow.Status.Active);
    }

    // ---------------------------------------------------------------- fees

    /// @notice The fee recipient (already holding USDC) is paid every fee accrued above.
    function test_gas_withdrawFees() public {
        vm.prank(relayer);
        escrow.withdrawFees();
        vm.snapshotGasLastCall("withdrawFees");
        assertGt(feesAtSetUp, 0, "fees had accrued");
        assertEq(escrow.accruedFees(), 0);
        assertEq(usdc.balanceOf(feeRecipient), feeRecipientBalanceAtSetUp + feesAtSetUp);
    }

    // ---------------------------------------------------------------- claims

    function test_gas_sellerClaim_direct() public {
        vm.prank(seller);
        escrow.sellerClaim(live, CLAIMED, liveVoucher);
        vm.snapshotGasLastCall("sellerClaim_direct");
        assertEq(uint256(escrow.escrowOf(_keyOf(live)).claimedUnits), CLAIMED);
    }

    function test_gas_sellerClaimWithAuthorization() public {
        vm.prank(relayer);
        escrow.sellerClaimWithAuthorization(live, CLAIMED, liveVoucher, deadline, liveClaimAuth);
        vm.snapshotGasLastCall("sellerClaimWithAuthorization");
        assertEq(uint256(escrow.escrowOf(_keyOf(live)).claimedUnits), CLAIMED);
    }

    // ---------------------------------------------------------------- withdraw

    function test_gas_buyerWithdraw_direct() public {
        vm.prank(buyer);
        escrow.buyerWithdraw(closed);
        vm.snapshotGasLastCall("buyerWithdraw_direct");
        assertTrue(escrow.escrowOf(_keyOf(closed)).buyerWithdrawn);
    }

    function test_gas_buyerWithdrawWithAuthorization() public {
        vm.prank(relayer);
        escrow.buyerWithdrawWithAuthorization(closed, deadline, closedWithdrawAuth);
        vm.snapshotGasLastCall("buyerWithdrawWithAuthorization");
        assertTrue(escrow.escrowOf(_keyOf(closed)).buyerWithdrawn);
    }

    // ---------------------------------------------------------------- close

    function test_gas_initiateClose_buyer() public {
        vm.prank(buyer);
        escrow.initiateClose(live, 0, "");
        vm.snapshotGasLastCall("initiateClose_buyer");
        assertTrue(_status(_keyOf(live)) == UsageEscrow.Status.Closing);
    }

    function test_gas_initiateClose_sellerFinalVoucher() public {
        vm.prank(seller);
        escrow.initiateClose(live, CLAIMED, liveVoucher);
        vm.snapshotGasLastCall("initiateClose_sellerFinalVoucher");
        assertTrue(_status(_keyOf(live)) == UsageEscrow.Status.Settled);
    }

    // ---------------------------------------------------------------- 20 sponsored claims

    /// @notice One relayer transaction claiming for 20 agreements of one seller (non-atomic,
    /// as the relayer sends it).
    function test_gas_batch20SponsoredClaims() public {
        bytes[] memory calls = sponsoredClaims;
        vm.prank(relayer);
        bool[] memory succeeded = escrow.batch(calls, false);
        uint256 gasUsed = vm.snapshotGasLastCall("batch_20_sponsoredClaims");
        gasVm.snapshotValue("batch_20_sponsoredClaims_perClaim", gasUsed / BATCH);
        for (uint256 i; i < BATCH; ++i) {
            assertTrue(succeeded[i], "every claim of the batch");
        }
        assertEq(usdc.balanceOf(seller), sellerBalanceAtSetUp + BATCH * CLAIMED * 100_000, "paid");
    }

    /// @notice The same 20 claims through `sellerClaimBatch`, which pays the seller once.
    function test_gas_sellerClaimBatch20() public {
        UsageEscrow.SponsoredClaim[] memory claims = sellerClaimBatchArgs;
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);
        uint256 gasUsed = vm.snapshotGasLastCall("sellerClaimBatch_20");
        gasVm.snapshotValue("sellerClaimBatch_20_perClaim", gasUsed / BATCH);
        assertEq(usdc.balanceOf(seller), sellerBalanceAtSetUp + BATCH * CLAIMED * 100_000, "paid");
    }

    /// @notice The same 20 claims as 20 relayer transactions. Each is a transaction of its own
    /// and so starts cold; they differ only in the agreement, so each costs what the first one,
    /// measured cold here, costs, and the total is 20 times it. The other 19 are then sent in
    /// this same transaction after `vm.cool` (which re-colds storage but not the token's account
    /// address): they must all cost the same, which shows the 20 are alike.
    function test_gas_20SingleSponsoredClaims() public {
        vm.prank(relayer);
        (bool ok,) = address(escrow).call(sponsoredClaims[0]);
        assertTrue(ok, "first single claim");
        uint256 single = vm.snapshotGasLastCall("single_sponsoredClaim");
        gasVm.snapshotValue("single_20_sponsoredClaims_total", single * BATCH);

        uint256 warmAccountSingle;
        for (uint256 i = 1; i < BATCH; ++i) {
            bytes memory call_ = sponsoredClaims[i];
            _coolAll();
            vm.prank(relayer);
            (ok,) = address(escrow).call(call_);
            assertTrue(ok, "single claim");
            uint256 gasUsed = gasVm.lastCallGas().gasTotalUsed;
            if (i == 1) warmAccountSingle = gasUsed;
            assertEq(gasUsed, warmAccountSingle, "the 20 single claims are alike");
        }
        assertEq(usdc.balanceOf(seller), sellerBalanceAtSetUp + BATCH * CLAIMED * 100_000, "paid");
    }

    /// @dev As at the start of a new transaction: every account the escrow touches is cold.
    function _coolAll() internal {
        gasVm.cool(address(escrow));
        gasVm.cool(address(usdc));
        gasVm.cool(address(oracle));
        gasVm.cool(buyer);
        gasVm.cool(seller);
        gasVm.cool(relayer);
        gasVm.cool(feeRecipient);
    }
}
