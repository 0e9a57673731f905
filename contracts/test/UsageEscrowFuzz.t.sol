// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";

/// @notice Fuzz tests of the escrow with real signatures (vm.sign) from fuzzed keys: exact amounts
/// over the whole allowed range of terms, cumulative vouchers in any order, every time boundary
/// the contract documents, and signatures from the wrong key.
contract UsageEscrowFuzzTest is EscrowFixture {
    /// @dev secp256k1 group order: private keys are 1 .. N - 1.
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant MAX_PRICE = type(uint128).max;
    uint256 internal constant MAX_QUANTITY = type(uint64).max;
    uint256 internal constant MAX_FEE = type(uint96).max;

    /// @dev Two fuzzed parties with their keys.
    struct Parties {
        address buyer;
        uint256 buyerKey;
        address seller;
        uint256 sellerKey;
    }

    // ---------------------------------------------------------------- helpers

    function _key(uint256 seed) internal pure returns (uint256) {
        return bound(seed, 1, SECP256K1_N - 1);
    }

    /// @dev Fuzzed buyer and seller keys; their addresses must be distinct fresh EOAs.
    function _parties(uint256 buyerSeed, uint256 sellerSeed) internal view returns (Parties memory p) {
        p.buyerKey = _key(buyerSeed);
        p.sellerKey = _key(sellerSeed);
        p.buyer = vm.addr(p.buyerKey);
        p.seller = vm.addr(p.sellerKey);
        vm.assume(p.buyer != p.seller);
        vm.assume(_fresh(p.buyer) && _fresh(p.seller));
    }

    function _fresh(address account) internal view returns (bool) {
        return account != feeRecipient && account != relayer && account != address(escrow) && account != address(usdc)
            && account != address(oracle) && account != address(this) && account != buyer && account != seller
            && account != USDC_PROXY_ADMIN && account.code.length == 0 && usdc.balanceOf(account) == 0;
    }

    /// @dev The fixture's default terms between `p`'s parties, with no fee.
    function _termsOf(Parties memory p, uint256 unitPrice, uint256 quantity)
        internal
        view
        returns (UsageEscrow.Activation memory t)
    {
        t = _terms();
        t.buyer = p.buyer;
        t.seller = p.seller;
        t.unitPrice = unitPrice;
        t.quantity = quantity;
        t.infraFee = 0;
    }

    /// @dev Mints the deposit and fee to the buyer and activates `t` with its three signatures.
    function _fundAndActivate(uint256 buyerKey_, UsageEscrow.Activation memory t) internal returns (bytes32 key) {
        usdc.mint(t.buyer, _deposit(t) + t.infraFee);
        bytes memory activationSig = _signActivation(buyerKey_, t);
        bytes memory fundingSig = _signFunding(buyerKey_, t);
        bytes memory feeSig = t.infraFee == 0 ? bytes("") : _signFeeAuthorization(buyerKey_, t);
        vm.prank(relayer);
        key = escrow.activate(t, activationSig, fundingSig, feeSig);
    }

    /// @dev A signed offset: mostly within ±2 s of the boundary, otherwise anywhere in ±range.
    function _delta(uint256 seed, uint256 range) internal pure returns (int256) {
        if (seed & 1 == 0) return int256(bound(seed >> 1, 0, 4)) - 2;
        // Safe: range is a small bound of this file's own, far below 2^255.
        // forge-lint: disable-next-line(unsafe-typecast)
        return int256(bound(seed >> 1, 0, 2 * range)) - int256(range);
    }

    function _at(uint256 boundary, int256 delta) internal pure returns (uint256) {
        // Safe: the sign is checked first, so each cast is of a non-negative value.
        // forge-lint: disable-next-line(unsafe-typecast)
        return delta < 0 ? boundary - uint256(-delta) : boundary + uint256(delta);
    }

    function _far() internal view returns (uint256) {
        return block.timestamp + 3650 days;
    }

    // ---------------------------------------------------------------- amounts

    /// @notice Over the whole allowed range of unit price, quantity and fee, activation takes
    /// exactly `quantity × unitPrice` plus the fee into escrow, the fee accrues for the fee
    /// recipient, and whatever the usage path, the seller ends with `used × unitPrice`, the buyer
    /// with the rest, the two sum to the deposit exactly, and only the fee stays behind.
    function testFuzz_amounts_depositExactAndSplitExact(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 priceSeed,
        uint256 quantitySeed,
        uint256 feeSeed,
        uint256 usedSeed,
        uint8 path
    ) public {
        Parties memory p = _parties(buyerSeed, sellerSeed);
        UsageEscrow.Activation memory t =
            _termsOf(p, bound(priceSeed, 1, MAX_PRICE), bound(quantitySeed, 1, MAX_QUANTITY));
        t.infraFee = bound(feeSeed, 0, MAX_FEE);
        uint256 used = bound(usedSeed, 0, t.quantity);
        uint256 deposit = t.quantity * t.unitPrice;

        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        uint256 feeBefore = usdc.balanceOf(feeRecipient);
        bytes32 key = _fundAndActivate(p.buyerKey, t);

        assertEq(usdc.balanceOf(p.buyer), 0, "buyer funded exactly deposit + fee");
        assertEq(usdc.balanceOf(address(escrow)), escrowBefore + deposit + t.infraFee, "escrow has deposit + fee");
        assertEq(escrow.accruedFees(), t.infraFee, "the fee accrues");
        assertEq(usdc.balanceOf(feeRecipient), feeBefore, "the fee is not paid out at activation");

        _settleAlong(p, t, key, used, path % 4);

        uint256 toSeller = usdc.balanceOf(p.seller);
        uint256 toBuyer = usdc.balanceOf(p.buyer);
        assertEq(toSeller, used * t.unitPrice, "seller paid for used units");
        assertEq(toBuyer, (t.quantity - used) * t.unitPrice, "buyer refunded the rest");
        assertEq(toSeller + toBuyer, deposit, "claimed + withdrawn == deposit");
        assertEq(usdc.balanceOf(address(escrow)), escrowBefore + t.infraFee, "only the fee left behind");
        assertEq(escrow.accruedFees(), t.infraFee, "fee taken once");
        if (t.infraFee != 0) {
            escrow.withdrawFees();
            assertEq(usdc.balanceOf(feeRecipient), feeBefore + t.infraFee, "fee recipient got the fee");
            assertEq(usdc.balanceOf(address(escrow)), escrowBefore, "nothing left behind");
        }

        UsageEscrow.Escrow memory e = escrow.escrowOf(key);
        assertTrue(e.status == UsageEscrow.Status.Settled, "settled");
        assertTrue(e.buyerWithdrawn, "buyer done");
        assertEq(uint256(e.claimedUnits), used, "claimed units");
    }

    /// @dev Four ways to reach the final split of `used` units.
    function _settleAlong(Parties memory p, UsageEscrow.Activation memory t, bytes32 key, uint256 used, uint256 path)
        internal
    {
        bool full = used == t.quantity;
        if (path == 0) {
            // Direct claim, buyer closes, withdraw at closesAt.
            if (used != 0) _claim(p, t, used, false, "");
            if (!full) {
                vm.prank(p.buyer);
                escrow.initiateClose(t, 0, "");
                vm.warp(escrow.escrowOf(key).closesAt);
            }
            _withdrawDirect(p, t, full);
        } else if (path == 1) {
            // The seller closes with its final voucher; the buyer withdraws at once.
            bytes memory v = used == 0 ? bytes("") : _signVoucher(p.buyerKey, t, used);
            vm.prank(p.seller);
            escrow.initiateClose(t, used, v);
            _withdrawDirect(p, t, full);
        } else if (path == 2) {
            // Sponsored claim, then the buyer withdraws (sponsored) after expiry + window.
            if (used != 0) _claim(p, t, used, true, "");
            vm.warp(t.expiry + t.closeWindow);
            _withdrawSponsored(p, t, full);
        } else {
            // Half claimed (sponsored), then a sponsored seller close with the final voucher.
            uint256 half = used / 2;
            if (half != 0) _claim(p, t, half, true, "");
            bytes memory v2 = used == 0 ? bytes("") : _signVoucher(p.buyerKey, t, used);
            bytes memory auth2 = _signClose(p.sellerKey, t, p.seller, used, _far());
            vm.prank(relayer);
            escrow.initiateCloseWithAuthorization(t, p.seller, used, v2, _far(), auth2);
            _withdrawSponsored(p, t, full);
        }
    }

    function _withdrawDirect(Parties memory p, UsageEscrow.Activation memory t, bool nothingLeft) internal {
        if (nothingLeft) vm.expectRevert(UsageEscrow.AlreadyWithdrawn.selector);
        vm.prank(p.buyer);
        escrow.buyerWithdraw(t);
    }

    function _withdrawSponsored(Parties memory p, UsageEscrow.Activation memory t, bool nothingLeft) internal {
        bytes memory auth = _signWithdraw(p.buyerKey, t, _far());
        if (nothingLeft) vm.expectRevert(UsageEscrow.AlreadyWithdrawn.selector);
        vm.prank(relayer);
        escrow.buyerWithdrawWithAuthorization(t, _far(), auth);
    }

    /// @notice A deposit is never more than the allowed maximum product, and terms outside the
    /// allowed ranges are refused before any money moves.
    function testFuzz_amounts_outOfRangeTermsRefused(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 priceSeed,
        uint256 quantitySeed,
        bool priceSide
    ) public {
        Parties memory p = _parties(buyerSeed, sellerSeed);
        UsageEscrow.Activation memory t = _termsOf(p, 1, 1);
        bytes4 expected;
        if (priceSide) {
            uint256 price = bound(priceSeed, 0, 2 ** 255);
            vm.assume(price == 0 || price > MAX_PRICE);
            t.unitPrice = price;
            t.quantity = bound(quantitySeed, 1, MAX_QUANTITY);
            expected = UsageEscrow.InvalidUnitPrice.selector;
        } else {
            uint256 quantity = bound(quantitySeed, 0, 2 ** 255);
            vm.assume(quantity == 0 || quantity > MAX_QUANTITY);
            t.quantity = quantity;
            t.unitPrice = bound(priceSeed, 1, MAX_PRICE);
            expected = UsageEscrow.InvalidQuantity.selector;
        }
        usdc.mint(p.buyer, 1);
        bytes memory activationSig = _signActivation(p.buyerKey, t);
        vm.expectRevert(expected);
        vm.prank(relayer);
        escrow.activate(t, activationSig, "", "");
        assertEq(usdc.balanceOf(p.buyer), 1, "nothing moved");
    }

    // ---------------------------------------------------------------- units

    /// @notice Any sequence of cumulative vouchers (in any order, replays included), claimed
    /// directly or sponsored: each claim above the running maximum pays exactly the difference,
    /// every other claim reverts and pays nothing, the seller ends with max(voucher) × price, and
    /// the buyer takes back exactly the rest.
    /// @dev Running state of a voucher sequence.
    struct Run {
        uint256 maxUnits;
        uint256 previous;
        bool settled;
    }

    function testFuzz_units_sellerGetsExactlyMaxVoucher(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 priceSeed,
        uint256 quantitySeed,
        uint256[] calldata rawUnits,
        uint256 pathBits
    ) public {
        Parties memory p = _parties(buyerSeed, sellerSeed);
        // Small quantities half of the time, so full usage and replays come up often.
        uint256 maxQuantity = quantitySeed & 1 == 0 ? 16 : MAX_QUANTITY;
        UsageEscrow.Activation memory t =
            _termsOf(p, bound(priceSeed, 1, MAX_PRICE), bound(quantitySeed >> 1, 1, maxQuantity));
        _fundAndActivate(p.buyerKey, t);

        Run memory run;
        uint256 n = rawUnits.length > 12 ? 12 : rawUnits.length;
        for (uint256 i; i < n; ++i) {
            // Bit 2i: replay the previous voucher; bit 2i+1: the sponsored path.
            uint256 units =
                (i != 0 && (pathBits >> (2 * i)) & 1 == 1) ? run.previous : bound(rawUnits[i], 0, t.quantity);
            _claimStep(p, t, run, units, (pathBits >> (2 * i + 1)) & 1 == 1);
        }
        assertEq(usdc.balanceOf(p.seller), run.maxUnits * t.unitPrice, "seller got max(voucher) x price");

        // A final close with an old voucher pays nothing more; the buyer gets the rest.
        if (!run.settled) {
            if (pathBits >> 255 == 1) {
                uint256 stale = bound(run.previous, 0, run.maxUnits);
                bytes memory v = stale == 0 ? bytes("") : _signVoucher(p.buyerKey, t, stale);
                vm.prank(p.seller);
                escrow.initiateClose(t, stale, v);
            } else {
                vm.prank(p.buyer);
                escrow.initiateClose(t, 0, "");
                vm.warp(block.timestamp + t.closeWindow);
            }
        }
        _withdrawDirect(p, t, run.settled);
        assertEq(usdc.balanceOf(p.seller), run.maxUnits * t.unitPrice, "seller total unchanged");
        assertEq(usdc.balanceOf(p.buyer), (t.quantity - run.maxUnits) * t.unitPrice, "buyer: the rest");
        assertEq(usdc.balanceOf(address(escrow)), 0, "escrow empty");
    }

    /// @dev One claim of a voucher sequence, with the outcome the running maximum predicts.
    function _claimStep(
        Parties memory p,
        UsageEscrow.Activation memory t,
        Run memory run,
        uint256 units,
        bool sponsored
    ) internal {
        run.previous = units;
        uint256 sellerBefore = usdc.balanceOf(p.seller);
        bool pays = !run.settled && units > run.maxUnits;
        bytes memory expectedError;
        if (run.settled) {
            expectedError = abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, UsageEscrow.Status.Settled);
        } else if (!pays) {
            expectedError = abi.encodeWithSelector(UsageEscrow.NothingToClaim.selector, units, run.maxUnits);
        }
        _claim(p, t, units, sponsored, expectedError);

        if (pays) {
            assertEq(
                usdc.balanceOf(p.seller) - sellerBefore, (units - run.maxUnits) * t.unitPrice, "claim pays the increase"
            );
            run.maxUnits = units;
            run.settled = units == t.quantity;
        } else {
            assertEq(usdc.balanceOf(p.seller), sellerBefore, "regression pays nothing");
        }
        UsageEscrow.Escrow memory e = escrow.escrowOf(_keyOf(t));
        assertEq(uint256(e.claimedUnits), run.maxUnits, "claimedUnits == max so far");
        assertEq(e.buyerWithdrawn, run.settled, "full usage leaves nothing to withdraw");
    }

    /// @dev Signs and sends a claim; expects `expectedError` when it is not empty. Everything is
    /// signed before the expectation, which applies to the very next call.
    function _claim(
        Parties memory p,
        UsageEscrow.Activation memory t,
        uint256 units,
        bool sponsored,
        bytes memory expectedError
    ) internal {
        bytes memory v = _signVoucher(p.buyerKey, t, units);
        bytes memory auth = sponsored ? _signClaim(p.sellerKey, t, units, _far()) : bytes("");
        uint256 deadline = _far();
        if (expectedError.length != 0) vm.expectRevert(expectedError);
        if (sponsored) {
            vm.prank(relayer);
            escrow.sellerClaimWithAuthorization(t, units, v, deadline, auth);
        } else {
            vm.prank(p.seller);
            escrow.sellerClaim(t, units, v);
        }
    }

    /// @notice Through `sellerClaimBatch`: any sequence of cumulative vouchers for two agreements
    /// of one buyer with two sellers, interleaved in one batch, pays each seller exactly its
    /// highest voucher × price in all; every claim at or below the running maximum (or after full
    /// usage) is skipped and pays nothing.
    function testFuzz_units_sellerClaimBatchPaysMaxVoucher(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 seller2Seed,
        uint256 priceSeed,
        uint256 quantitySeed,
        uint256[] calldata rawUnits,
        uint256 orderBits
    ) public {
        Parties memory p = _parties(buyerSeed, sellerSeed);
        Parties memory p2 = _parties(buyerSeed, seller2Seed);
        vm.assume(p2.seller != p.seller);
        uint256 maxQuantity = quantitySeed & 1 == 0 ? 16 : MAX_QUANTITY;
        UsageEscrow.Activation[2] memory t;
        t[0] = _termsOf(p, bound(priceSeed, 1, MAX_PRICE), bound(quantitySeed >> 1, 1, maxQuantity));
        // A fresh struct: assigning t[0] would share it in memory.
        t[1] = _termsOf(p2, t[0].unitPrice, t[0].quantity);
        _fundAndActivate(p.buyerKey, t[0]);
        _fundAndActivate(p.buyerKey, t[1]);

        uint256 n = rawUnits.length > 16 ? 16 : rawUnits.length;
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](n);
        uint256[2] memory maxUnits;
        for (uint256 i; i < n; ++i) {
            uint256 which = (orderBits >> i) & 1;
            uint256 units = bound(rawUnits[i], 0, t[which].quantity);
            claims[i] = _sponsoredClaim(p.buyerKey, which == 0 ? p.sellerKey : p2.sellerKey, t[which], units);
            if (units > maxUnits[which]) maxUnits[which] = units;
        }
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);

        assertEq(usdc.balanceOf(p.seller), maxUnits[0] * t[0].unitPrice, "seller 1: max x price");
        assertEq(usdc.balanceOf(p2.seller), maxUnits[1] * t[1].unitPrice, "seller 2: max x price");
        for (uint256 w; w < 2; ++w) {
            UsageEscrow.Escrow memory e = escrow.escrowOf(_keyOf(t[w]));
            assertEq(uint256(e.claimedUnits), maxUnits[w], "claimedUnits == max");
            assertEq(e.buyerWithdrawn, maxUnits[w] == t[w].quantity, "full usage settles");
        }
        assertEq(
            usdc.balanceOf(address(escrow)),
            (2 * t[0].quantity - maxUnits[0] - maxUnits[1]) * t[0].unitPrice,
            "escrow keeps the rest"
        );
    }

    function _sponsoredClaim(uint256 buyerKey_, uint256 sellerKey_, UsageEscrow.Activation memory t, uint256 units)
        internal
        view
        returns (UsageEscrow.SponsoredClaim memory)
    {
        return UsageEscrow.SponsoredClaim({
            terms: t,
            cumulativeUnits: units,
            voucherSignature: _signVoucher(buyerKey_, t, units),
            deadline: _far(),
            authorization: _signClaim(sellerKey_, t, units, _far())
        });
    }

    /// @notice A voucher above quantity is refused, for a claim and for a seller's final close.
    function testFuzz_units_aboveQuantityRefused(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 quantitySeed,
        uint256 unitsSeed,
        bool viaClose
    ) public {
        Parties memory p = _parties(buyerSeed, sellerSeed);
        UsageEscrow.Activation memory t = _termsOf(p, 100_000, bound(quantitySeed, 1, MAX_QUANTITY));
        _fundAndActivate(p.buyerKey, t);
        uint256 units = bound(unitsSeed, t.quantity + 1, type(uint256).max);
        bytes memory v = _signVoucher(p.buyerKey, t, units);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.UnitsExceedQuantity.selector, units, t.quantity));
        vm.prank(p.seller);
        if (viaClose) escrow.initiateClose(t, units, v);
        else escrow.sellerClaim(t, units, v);
        assertEq(usdc.balanceOf(p.seller), 0, "nothing paid");
    }

    // ---------------------------------------------------------------- deadlines

    /// @notice Activation is accepted iff `block.timestamp < activateBy`.
    function testFuzz_deadline_activateBy(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 windowSeed,
        uint256 deltaSeed,
        bool withFee
    ) public {
        Parties memory p = _parties(buyerSeed, sellerSeed);
        UsageEscrow.Activation memory t = _termsOf(p, 100_000, 100);
        t.activateBy = START + bound(windowSeed, 1, 30 days);
        t.expiry = t.activateBy + 1 days;
        t.infraFee = withFee ? 100_000 : 0;
        usdc.mint(p.buyer, _deposit(t) + t.infraFee);
        bytes memory activationSig = _signActivation(p.buyerKey, t);
        bytes memory fundingSig = _signFunding(p.buyerKey, t);
        bytes memory feeSig = withFee ? _signFeeAuthorization(p.buyerKey, t) : bytes("");

        uint256 now_ = _at(t.activateBy, _delta(deltaSeed, 12 hours));
        vm.warp(now_);
        bool accepted = now_ < t.activateBy;
        if (!accepted) {
            vm.expectRevert(abi.encodeWithSelector(UsageEscrow.ActivationExpired.selector, t.activateBy));
        }
        vm.prank(relayer);
        escrow.activate(t, activationSig, fundingSig, feeSig);
        assertEq(usdc.balanceOf(address(escrow)), accepted ? _deposit(t) + t.infraFee : 0, "deposit iff accepted");
        assertTrue(_status(_keyOf(t)) == (accepted ? UsageEscrow.Status.Active : UsageEscrow.Status.None), "status");
    }

    /// @notice Every sponsored authorization is accepted iff `block.timestamp <= deadline`.
    function testFuzz_deadline_authorization(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 deadlineSeed,
        uint256 deltaSeed,
        uint8 action
    ) public {
        Parties memory p = _parties(buyerSeed, sellerSeed);
        UsageEscrow.Activation memory t = _termsOf(p, 100_000, 100);
        t.expiry = START + 400 days;
        bytes32 key = _fundAndActivate(p.buyerKey, t);

        uint256 deadline = START + bound(deadlineSeed, 1 days, 300 days);
        action %= 5;
        if (action == 3) {
            // Withdraw needs an open window: the seller settles first, so it is open at once.
            vm.prank(p.seller);
            escrow.initiateClose(t, 0, "");
        }
        bytes memory voucher = _signVoucher(p.buyerKey, t, 7);
        bytes memory auth;
        if (action == 0 || action == 4) auth = _signClaim(p.sellerKey, t, 7, deadline);
        else if (action == 1) auth = _signClose(p.buyerKey, t, p.buyer, 0, deadline);
        else if (action == 2) auth = _signClose(p.sellerKey, t, p.seller, 7, deadline);
        else auth = _signWithdraw(p.buyerKey, t, deadline);

        uint256 now_ = _at(deadline, _delta(deltaSeed, 1 days));
        vm.warp(now_);
        bool accepted = now_ <= deadline;
        bytes memory expiredError = abi.encodeWithSelector(UsageEscrow.AuthorizationExpired.selector, deadline);
        if (!accepted) vm.expectRevert(expiredError);
        vm.prank(relayer);
        if (action == 0) {
            escrow.sellerClaimWithAuthorization(t, 7, voucher, deadline, auth);
        } else if (action == 1) {
            escrow.initiateCloseWithAuthorization(t, p.buyer, 0, "", deadline, auth);
        } else if (action == 2) {
            escrow.initiateCloseWithAuthorization(t, p.seller, 7, voucher, deadline, auth);
        } else if (action == 3) {
            escrow.buyerWithdrawWithAuthorization(t, deadline, auth);
        } else {
            bytes[] memory calls = new bytes[](1);
            calls[0] = abi.encodeCall(UsageEscrow.sellerClaimWithAuthorization, (t, 7, voucher, deadline, auth));
            escrow.batch(calls, true);
        }

        UsageEscrow.Escrow memory e = escrow.escrowOf(key);
        if (action == 0 || action == 4) {
            assertEq(uint256(e.claimedUnits), accepted ? 7 : 0, "claim iff accepted");
            assertEq(usdc.balanceOf(p.seller), accepted ? 7 * t.unitPrice : 0, "seller paid");
        } else if (action == 1) {
            assertTrue(
                e.status == (accepted ? UsageEscrow.Status.Closing : UsageEscrow.Status.Active),
                "buyer close iff accepted"
            );
        } else if (action == 2) {
            assertTrue(
                e.status == (accepted ? UsageEscrow.Status.Settled : UsageEscrow.Status.Active),
                "seller close iff accepted"
            );
        } else {
            assertEq(e.buyerWithdrawn, accepted, "withdraw iff accepted");
            assertEq(usdc.balanceOf(p.buyer), accepted ? _deposit(t) : 0, "buyer refunded");
        }
    }

    /// @dev Fuzzed parties on 100 units at 0.10 USDC with a fuzzed close window (anywhere from the
    /// minimum to the maximum) and expiry (up to 400 days out), activated.
    function _activeWithFuzzedWindow(uint256 buyerSeed, uint256 sellerSeed, uint256 windowSeed, uint256 expirySeed)
        internal
        returns (Parties memory p, UsageEscrow.Activation memory t)
    {
        p = _parties(buyerSeed, sellerSeed);
        t = _termsOf(p, 100_000, 100);
        t.closeWindow = bound(windowSeed, escrow.MIN_CLOSE_WINDOW(), escrow.MAX_CLOSE_WINDOW());
        t.expiry = START + bound(expirySeed, 1, 400 days);
        _fundAndActivate(p.buyerKey, t);
    }

    /// @notice After the buyer closes at any time, withdraw is accepted iff the close window has
    /// run (`now >= closedAt + closeWindow`) or `now >= expiry + closeWindow`; the stored
    /// `closesAt` (the window runs from the close, or from expiry for a late close) and
    /// `withdrawOpensAt` are exactly that moment.
    function testFuzz_deadline_closesAt(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 windowSeed,
        uint256 expirySeed,
        uint256 closeAtSeed,
        uint256 deltaSeed,
        bool sponsored
    ) public {
        (Parties memory p, UsageEscrow.Activation memory t) =
            _activeWithFuzzedWindow(buyerSeed, sellerSeed, windowSeed, expirySeed);

        // The buyer closes at any moment, before or after expiry.
        uint256 closedAt = START + bound(closeAtSeed, 0, 800 days);
        vm.warp(closedAt);
        vm.prank(p.buyer);
        escrow.initiateClose(t, 0, "");
        uint256 windowEnd = closedAt + t.closeWindow;
        uint256 expiryOpen = t.expiry + t.closeWindow;
        uint256 opensAt = windowEnd < expiryOpen ? windowEnd : expiryOpen;
        assertEq(escrow.withdrawOpensAt(t), opensAt, "withdrawOpensAt");
        assertEq(uint256(escrow.escrowOf(_keyOf(t)).closesAt), opensAt, "closesAt");

        uint256 now_ = _at(opensAt, _delta(deltaSeed, 2 days));
        if (now_ < closedAt) now_ = closedAt;
        vm.warp(now_);
        _withdrawAt(p, t, now_ >= windowEnd || now_ >= expiryOpen, opensAt, sponsored);
    }

    /// @notice With no close, withdraw is accepted iff `now >= expiry + closeWindow`; before it the
    /// seller can still claim, also past expiry, and after it nothing more is claimable.
    function testFuzz_deadline_expiryPlusWindow(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 windowSeed,
        uint256 expirySeed,
        uint256 deltaSeed,
        bool sponsored
    ) public {
        (Parties memory p, UsageEscrow.Activation memory t) =
            _activeWithFuzzedWindow(buyerSeed, sellerSeed, windowSeed, expirySeed);
        uint256 opensAt = t.expiry + t.closeWindow;
        assertEq(escrow.withdrawOpensAt(t), opensAt, "withdrawOpensAt");

        uint256 now_ = _at(opensAt, _delta(deltaSeed, 2 days));
        if (now_ < START) now_ = START;
        vm.warp(now_);
        // The seller claims first, whatever the time: the agreement is still active.
        _claim(p, t, 10, sponsored, "");
        assertEq(usdc.balanceOf(p.seller), 10 * t.unitPrice, "claim past expiry still pays");

        bool accepted = now_ >= opensAt;
        _withdrawAt(p, t, accepted, opensAt, sponsored);
        if (accepted) {
            bytes memory v = _signVoucher(p.buyerKey, t, 20);
            vm.expectRevert(abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, UsageEscrow.Status.Settled));
            vm.prank(p.seller);
            escrow.sellerClaim(t, 20, v);
        }
    }

    function _withdrawAt(
        Parties memory p,
        UsageEscrow.Activation memory t,
        bool accepted,
        uint256 opensAt,
        bool sponsored
    ) internal {
        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        uint256 refund = (t.quantity - escrow.escrowOf(_keyOf(t)).claimedUnits) * t.unitPrice;
        bytes memory auth = sponsored ? _signWithdraw(p.buyerKey, t, _far()) : bytes("");
        if (!accepted) {
            vm.expectRevert(abi.encodeWithSelector(UsageEscrow.WithdrawNotOpen.selector, opensAt));
        }
        if (sponsored) {
            vm.prank(relayer);
            escrow.buyerWithdrawWithAuthorization(t, _far(), auth);
        } else {
            vm.prank(p.buyer);
            escrow.buyerWithdraw(t);
        }
        assertEq(usdc.balanceOf(p.buyer), accepted ? refund : 0, "refund iff accepted");
        uint256 escrowAfter = accepted ? escrowBefore - refund : escrowBefore;
        assertEq(usdc.balanceOf(address(escrow)), escrowAfter, "escrow");
    }

    // ---------------------------------------------------------------- signers

    /// @notice A signature from any key but the right party's is refused for every signed item,
    /// and moves nothing; the same action then succeeds with the right key.
    function testFuzz_signers_wrongKeyRefused(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 wrongSeed,
        uint8 item,
        bool otherParty
    ) public {
        Parties memory p = _parties(buyerSeed, sellerSeed);
        UsageEscrow.Activation memory t = _termsOf(p, 100_000, 100);
        item %= 9;
        // Items 0-4 and 6 are the buyer's to sign; 5, 7 the seller's; 8 is a buyer's close.
        bool sellerSigns = item == 5 || item == 7;
        uint256 rightKey = sellerSigns ? p.sellerKey : p.buyerKey;
        uint256 wrongKey = otherParty ? (sellerSigns ? p.buyerKey : p.sellerKey) : _key(wrongSeed);
        vm.assume(vm.addr(wrongKey) != vm.addr(rightKey));

        if (item <= 2) {
            t.infraFee = item == 2 ? 50_000 : 0;
            _activationWithWrongKey(t, rightKey, wrongKey, item);
            return;
        }

        bytes32 key = _fundAndActivate(p.buyerKey, t);
        if (item == 6) {
            vm.prank(p.seller);
            escrow.initiateClose(t, 0, "");
        }
        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        UsageEscrow.Escrow memory before = escrow.escrowOf(key);

        for (uint256 attempt; attempt < 2; ++attempt) {
            uint256 signer = attempt == 0 ? wrongKey : rightKey;
            // Everything is signed first: the expectation applies to the very next call.
            bytes memory voucher = _signVoucher(item == 3 || item == 4 ? signer : p.buyerKey, t, 5);
            bytes memory auth;
            if (item == 5) auth = _signClaim(signer, t, 5, _far());
            else if (item == 6) auth = _signWithdraw(signer, t, _far());
            else if (item == 7) auth = _signClose(signer, t, p.seller, 0, _far());
            else if (item == 8) auth = _signClose(signer, t, p.buyer, 0, _far());
            uint256 deadline = _far();
            if (attempt == 0) vm.expectRevert(UsageEscrow.InvalidSignature.selector);
            if (item == 3) {
                // The buyer's voucher on a direct claim.
                vm.prank(p.seller);
                escrow.sellerClaim(t, 5, voucher);
            } else if (item == 4) {
                // The buyer's voucher on the seller's final close.
                vm.prank(p.seller);
                escrow.initiateClose(t, 5, voucher);
            } else if (item == 5) {
                // The seller's SellerClaim authorization.
                vm.prank(relayer);
                escrow.sellerClaimWithAuthorization(t, 5, voucher, deadline, auth);
            } else if (item == 6) {
                // The buyer's BuyerWithdraw authorization.
                vm.prank(relayer);
                escrow.buyerWithdrawWithAuthorization(t, deadline, auth);
            } else if (item == 7) {
                // The seller's InitiateClose authorization.
                vm.prank(relayer);
                escrow.initiateCloseWithAuthorization(t, p.seller, 0, "", deadline, auth);
            } else {
                // The buyer's InitiateClose authorization.
                vm.prank(relayer);
                escrow.initiateCloseWithAuthorization(t, p.buyer, 0, "", deadline, auth);
            }
            if (attempt == 0) {
                UsageEscrow.Escrow memory afterRefusal = escrow.escrowOf(key);
                assertTrue(afterRefusal.status == before.status, "status unchanged");
                assertEq(afterRefusal.claimedUnits, before.claimedUnits, "units unchanged");
                assertEq(afterRefusal.buyerWithdrawn, before.buyerWithdrawn, "withdrawn unchanged");
                assertEq(usdc.balanceOf(address(escrow)), escrowBefore, "no money moved");
            }
        }
        assertTrue(
            keccak256(abi.encode(escrow.escrowOf(key))) != keccak256(abi.encode(before)), "the right key went through"
        );
    }

    /// @dev Activation with one of its three buyer signatures from `wrongKey`, then the right one.
    function _activationWithWrongKey(UsageEscrow.Activation memory t, uint256 rightKey, uint256 wrongKey, uint256 item)
        internal
    {
        usdc.mint(t.buyer, _deposit(t) + t.infraFee);
        for (uint256 attempt; attempt < 2; ++attempt) {
            uint256 signer = attempt == 0 ? wrongKey : rightKey;
            bytes memory activationSig = _signActivation(item == 0 ? signer : rightKey, t);
            bytes memory fundingSig = _signFunding(item == 1 ? signer : rightKey, t);
            bytes memory feeSig = item == 2 ? _signFeeAuthorization(signer, t) : bytes("");
            // The token refuses a wrong funding or fee authorization with an error of the same
            // selector as the escrow's own InvalidSignature.
            if (attempt == 0) vm.expectRevert(UsageEscrow.InvalidSignature.selector);
            vm.prank(relayer);
            escrow.activate(t, activationSig, fundingSig, feeSig);
            if (attempt == 0) {
                assertTrue(_status(_keyOf(t)) == UsageEscrow.Status.None, "not activated");
                assertEq(usdc.balanceOf(t.buyer), _deposit(t) + t.infraFee, "buyer untouched");
            }
        }
        assertTrue(_status(_keyOf(t)) == UsageEscrow.Status.Active, "right key activates");
        assertEq(usdc.balanceOf(address(escrow)), _deposit(t) + t.infraFee, "deposit and fee in");
        assertEq(escrow.accruedFees(), t.infraFee, "fee accrued");
    }
}
