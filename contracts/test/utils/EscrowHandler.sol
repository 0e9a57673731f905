// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Vm} from "./Vm.sol";
import {UsageEscrow} from "../../src/UsageEscrow.sol";
import {MockUSDC} from "../../src/mocks/MockUSDC.sol";

/// @notice Drives the escrow for the invariant suite: activates agreements between a few buyers and
/// sellers (real keys, vm.sign; the fee by authorization or allowance), records vouchers, and
/// performs random closes, claims (direct, sponsored, through `batch` and through
/// `sellerClaimBatch`, with a lapsed authorization or a blacklisted seller now and then),
/// withdrawals and time warps. (Fee withdrawals and recipient changes: FeeHandler.) It
/// keeps its own model of every agreement and predicts each call's outcome (success or the exact
/// error); the invariants then compare the model, the ghost sums of money moved (measured as token
/// balance changes) and the chain.
contract EscrowHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant ACTORS = 3;
    uint256 internal constant MAX_VOUCHERS = 8;
    uint256 internal constant MAX_BATCH = 20;

    // ---------------------------------------------------------------- paths (call counters)

    uint256 public constant ACTIVATE_NO_FEE = 0;
    uint256 public constant ACTIVATE_FEE_AUTHORIZATION = 1;
    uint256 public constant ACTIVATE_FEE_APPROVED = 2;
    uint256 public constant VOUCHER = 3;
    uint256 public constant CLAIM_DIRECT = 4;
    uint256 public constant CLAIM_SPONSORED = 5;
    uint256 public constant CLAIM_SETTLES_FULL = 6;
    uint256 public constant CLAIM_REFUSED = 7;
    uint256 public constant BATCH_ATOMIC = 8;
    uint256 public constant BATCH_PARTIAL = 9;
    uint256 public constant CLOSE_BUYER = 10;
    uint256 public constant CLOSE_BUYER_SPONSORED = 11;
    uint256 public constant CLOSE_SELLER = 12;
    uint256 public constant CLOSE_SELLER_SPONSORED = 13;
    uint256 public constant CLOSE_SELLER_PAYS = 14;
    uint256 public constant CLOSE_REFUSED = 15;
    uint256 public constant WITHDRAW_DIRECT = 16;
    uint256 public constant WITHDRAW_SPONSORED = 17;
    uint256 public constant WITHDRAW_AFTER_EXPIRY = 18;
    uint256 public constant WITHDRAW_REFUSED_NOT_OPEN = 19;
    uint256 public constant WITHDRAW_REFUSED_DONE = 20;
    uint256 public constant AUTHORIZATION_EXPIRED = 21;
    uint256 public constant WARP = 22;
    uint256 public constant WARP_TO_BOUNDARY = 23;
    uint256 public constant CLAIM_BATCH_PAID = 24;
    uint256 public constant CLAIM_BATCH_SKIPPED = 25;
    uint256 public constant CLAIM_BATCH_SKIPPED_LAPSED = 26;
    uint256 public constant CLAIM_BATCH_PAYOUT_REFUSED = 27;
    uint256 public constant ACTIVATE_AFTER_OTHER_PERMIT = 28;
    uint256 public constant PATHS = 29;

    /// @notice How often each path was taken (successes for the success paths).
    uint256[PATHS] public hits;

    // ---------------------------------------------------------------- model

    /// @dev One agreement: its terms, the handler's model of its escrow, and the money moved.
    struct Agreement {
        UsageEscrow.Activation terms;
        bytes32 key;
        uint256 buyerIdx;
        uint256 sellerIdx;
        uint256 deposit;
        // Model of the stored escrow.
        UsageEscrow.Status status;
        bool buyerWithdrawn;
        uint256 closesAt;
        uint256 claimedUnits;
        // Vouchers the buyer signed (cumulative units), held by the seller.
        uint256[] vouchers;
        // Money actually moved (token balance changes of the payee).
        uint256 paidToSeller;
        uint256 paidToBuyer;
        // The largest claimedUnits ever read from the chain.
        uint256 highestClaimedSeen;
    }

    UsageEscrow public immutable escrow;
    MockUSDC public immutable usdc;
    address public immutable relayer;

    address[ACTORS] public buyers;
    address[ACTORS] public sellers;
    uint256[ACTORS] internal _buyerKeys;
    uint256[ACTORS] internal _sellerKeys;

    Agreement[] internal _agreements;

    // ---------------------------------------------------------------- ghosts

    uint256 public ghostDeposits;
    /// @notice The infra fees taken at activation (they accrue in the escrow).
    uint256 public ghostFees;
    uint256 public ghostPaidToSellers;
    uint256 public ghostPaidToBuyers;
    /// @notice What each actor received in all, measured as balance increases.
    mapping(address account => uint256) public ghostReceived;
    /// @notice The deposits of the agreements each actor is a party to.
    mapping(address account => uint256) public ghostDepositsOf;
    /// @notice The infra fees each buyer paid.
    mapping(address account => uint256) public ghostFeesPaidBy;

    /// @notice A call the model said would succeed reverted.
    uint256 public unexpectedReverts;
    /// @notice A call the model said would revert succeeded.
    uint256 public unexpectedSuccesses;
    /// @notice A call reverted, as predicted, but with another error than predicted.
    uint256 public wrongErrors;
    /// @notice The chain's escrow state differs from the model after a call.
    uint256 public modelMismatches;
    /// @notice A payee's balance moved by other than the model's amount.
    uint256 public paymentMismatches;
    /// @notice claimedUnits was seen going down.
    uint256 public claimedUnitsDecreases;
    /// @notice The first failure's description, for the assertion message.
    string public firstFailure;

    constructor(
        UsageEscrow escrow_,
        MockUSDC usdc_,
        address relayer_,
        uint256[ACTORS] memory buyerKeys_,
        uint256[ACTORS] memory sellerKeys_
    ) {
        escrow = escrow_;
        usdc = usdc_;
        relayer = relayer_;
        for (uint256 i; i < ACTORS; ++i) {
            _buyerKeys[i] = buyerKeys_[i];
            _sellerKeys[i] = sellerKeys_[i];
            buyers[i] = vm.addr(buyerKeys_[i]);
            sellers[i] = vm.addr(sellerKeys_[i]);
        }
    }

    // ================================================================ actions

    /// @notice Activates an agreement with bounded random terms, with no fee, a fee authorization
    /// (sometimes after the buyer used an EIP-2612 permit elsewhere in between), or a fee
    /// allowance set beforehand.
    function activate(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 priceSeed,
        uint256 quantitySeed,
        uint256 timeSeed,
        uint256 feeSeed
    ) public {
        uint256 b = buyerSeed % ACTORS;
        uint256 s = sellerSeed % ACTORS;
        uint256 feeMode = feeSeed % 3;
        UsageEscrow.Activation memory t;
        t.buyer = buyers[b];
        t.seller = sellers[s];
        // Mostly small terms, so full usage happens; sometimes anything in the allowed range.
        t.quantity = _bound(quantitySeed >> 8, 1, quantitySeed % 5 == 0 ? type(uint64).max : 50);
        t.unitPrice = _bound(priceSeed >> 8, 1, priceSeed % 5 == 0 ? type(uint128).max : 1e6);
        t.infraFee = feeMode == 0 ? 0 : _bound(feeSeed >> 8, 1, 1e6);
        t.activateBy = block.timestamp + 1 hours;
        t.expiry = block.timestamp + _bound(timeSeed, 1, 10 days);
        t.closeWindow = _bound(timeSeed >> 64, escrow.MIN_CLOSE_WINDOW(), 2 days);
        t.salt = keccak256(abi.encode(_agreements.length, block.timestamp));
        t.agreementId = bytes32(_agreements.length + 1);

        bool otherPermit = feeMode == 1 && (feeSeed >> 4) % 2 == 0;
        bytes32 key = escrow.agreementKey(t);
        if (!_submitActivation(t, key, b, feeMode, otherPermit)) return;

        Agreement storage a = _agreements.push();
        a.terms = t;
        a.key = key;
        a.buyerIdx = b;
        a.sellerIdx = s;
        a.deposit = t.quantity * t.unitPrice;
        a.status = UsageEscrow.Status.Active;
        ghostDeposits += a.deposit;
        ghostFees += t.infraFee;
        ghostDepositsOf[t.buyer] += a.deposit;
        ghostDepositsOf[t.seller] += a.deposit;
        ghostFeesPaidBy[t.buyer] += t.infraFee;
        _hit(feeMode == 0 ? ACTIVATE_NO_FEE : feeMode == 1 ? ACTIVATE_FEE_AUTHORIZATION : ACTIVATE_FEE_APPROVED);
        if (otherPermit) _hit(ACTIVATE_AFTER_OTHER_PERMIT);
        _checkAll();
    }

    /// @dev Balances around an activation.
    struct ActivationBalances {
        uint256 escrow;
        uint256 buyer;
        uint256 accrued;
        address recipient;
        uint256 recipientBalance;
    }

    /// @dev Signs `t` as buyer `b` (the fee by authorization for fee mode 1, by allowance for 2),
    /// sends it as the relayer and checks the money: the escrow took deposit + fee from the buyer
    /// and the fee accrued. False when it reverted (recorded as unexpected).
    function _submitActivation(
        UsageEscrow.Activation memory t,
        bytes32 key,
        uint256 b,
        uint256 feeMode,
        bool otherPermit
    ) internal returns (bool) {
        uint256 deposit = t.quantity * t.unitPrice;
        bytes memory activationSig = _sign(_buyerKeys[b], key);
        bytes memory fundingSig = _sign(_buyerKeys[b], _fundingDigest(t, key, deposit));
        bytes memory feeSig;
        if (feeMode == 1) {
            feeSig = _sign(_buyerKeys[b], _feeAuthorizationDigest(t, key));
            // Signed before the buyer permits someone else: the fee's nonce is not the permit's.
            if (otherPermit) _permitElsewhere(b);
        } else if (feeMode == 2) {
            vm.prank(t.buyer);
            usdc.approve(address(escrow), t.infraFee);
        }

        ActivationBalances memory before = _activationBalances(t.buyer);
        vm.prank(relayer);
        try escrow.activate(t, activationSig, fundingSig, feeSig) returns (bytes32 returned) {
            if (returned != key) _mismatch("activate returned another key");
        } catch {
            _unexpectedRevert("activate");
            return false;
        }
        ActivationBalances memory after_ = _activationBalances(t.buyer);
        _check(after_.escrow == before.escrow + deposit + t.infraFee, "escrow got deposit + fee");
        _check(after_.buyer + deposit + t.infraFee == before.buyer, "buyer paid deposit + fee");
        _check(after_.accrued == before.accrued + t.infraFee, "the fee accrued");
        _check(after_.recipientBalance == before.recipientBalance, "the fee is not paid out at activation");
        return true;
    }

    function _activationBalances(address buyer) internal view returns (ActivationBalances memory m) {
        m.escrow = usdc.balanceOf(address(escrow));
        m.buyer = usdc.balanceOf(buyer);
        m.accrued = escrow.accruedFees();
        m.recipient = escrow.feeRecipient();
        m.recipientBalance = usdc.balanceOf(m.recipient);
    }

    /// @notice The buyer signs a cumulative usage voucher: mostly growing, sometimes anything up to
    /// quantity (so regressions happen), sometimes exactly quantity.
    function recordVoucher(uint256 agreementSeed, uint256 unitsSeed) public {
        if (!_ensureAgreement(agreementSeed)) return;
        Agreement storage a = _agreements[_index(agreementSeed, false)];
        uint256 q = a.terms.quantity;
        uint256 top = _maxVoucher(a);
        uint256 mode = unitsSeed % 4;
        uint256 units;
        if (mode == 0) units = q;
        else if (mode == 1) units = _bound(unitsSeed >> 8, 0, q);
        else units = _min(q, top + _bound(unitsSeed >> 8, 1, 1 + q / 3));
        if (a.vouchers.length < MAX_VOUCHERS) a.vouchers.push(units);
        else a.vouchers[unitsSeed % MAX_VOUCHERS] = units;
        _hit(VOUCHER);
        _checkAll();
    }

    /// @notice The seller claims with one of its vouchers: directly, sponsored, or sponsored with
    /// a lapsed authorization.
    function claim(uint256 agreementSeed, uint256 voucherSeed, uint256 mode) public {
        if (!_ensureAgreement(agreementSeed)) return;
        Agreement storage a = _agreements[_index(agreementSeed, true)];
        // Modes 0-1 direct, 2-4 sponsored, 5 sponsored with a lapsed authorization.
        mode %= 6;
        _claim(a, _voucher(a, voucherSeed), mode < 2 ? 0 : mode < 5 ? 1 : 2, voucherSeed);
    }

    /// @dev Claims `units`: mode 0 direct, 1 sponsored, 2 sponsored with a lapsed authorization.
    function _claim(Agreement storage a, uint256 units, uint256 mode, uint256 voucherSeed) internal {
        bool sponsored = mode != 0;
        uint256 deadline =
            mode == 2 ? block.timestamp - 1 - (voucherSeed % 100) : block.timestamp + (voucherSeed % 1 days);
        UsageEscrow.Activation memory t = a.terms;
        bytes memory voucher = _signVoucher(a, units);
        bytes memory auth =
            sponsored ? _sign(_sellerKeys[a.sellerIdx], escrow.sellerClaimDigest(a.key, units, deadline)) : bytes("");

        bytes memory expected;
        if (mode == 2) {
            expected = abi.encodeWithSelector(UsageEscrow.AuthorizationExpired.selector, deadline);
        } else if (!_open(a)) {
            expected = abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, a.status);
        } else if (units <= a.claimedUnits) {
            expected = abi.encodeWithSelector(UsageEscrow.NothingToClaim.selector, units, a.claimedUnits);
        }

        uint256 sellerBefore = usdc.balanceOf(t.seller);
        bool ok;
        bytes memory err;
        if (sponsored) {
            vm.prank(relayer);
            try escrow.sellerClaimWithAuthorization(t, units, voucher, deadline, auth) {
                ok = true;
            } catch (bytes memory e) {
                err = e;
            }
        } else {
            vm.prank(t.seller);
            try escrow.sellerClaim(t, units, voucher) {
                ok = true;
            } catch (bytes memory e) {
                err = e;
            }
        }
        if (!_outcome("claim", ok, err, expected)) return;
        if (!ok) {
            _hit(mode == 2 ? AUTHORIZATION_EXPIRED : CLAIM_REFUSED);
            _checkPaid(t.seller, sellerBefore, 0, "refused claim paid");
            _checkAll();
            return;
        }
        uint256 amount = (units - a.claimedUnits) * t.unitPrice;
        _paySeller(a, sellerBefore, amount);
        a.claimedUnits = units;
        if (units == t.quantity) {
            a.status = UsageEscrow.Status.Settled;
            a.buyerWithdrawn = true;
            _hit(CLAIM_SETTLES_FULL);
        }
        _hit(sponsored ? CLAIM_SPONSORED : CLAIM_DIRECT);
        _checkAll();
    }

    /// @notice The relayer runs sponsored claims of one seller's agreements (its highest
    /// voucher each) through the generic `batch`. Atomic batches hold only good claims; a
    /// non-atomic batch ends with a replay of its first claim, which must fail alone.
    function batchClaims(uint256 sellerSeed, uint256 countSeed, bool atomic) public {
        uint256 s = sellerSeed % ACTORS;
        uint256 limit = _bound(countSeed, 1, MAX_BATCH);
        uint256[] memory picked = new uint256[](limit);
        uint256 n;
        for (uint256 i; i < _agreements.length && n < limit; ++i) {
            Agreement storage a = _agreements[i];
            if (a.sellerIdx != s) continue;
            if (!_open(a)) continue;
            if (_maxVoucher(a) <= a.claimedUnits) continue;
            picked[n++] = i;
        }
        if (n == 0) return;
        uint256 extra = atomic ? 0 : 1;
        bytes[] memory calls = new bytes[](n + extra);
        uint256 deadline = block.timestamp + 1 hours;
        uint256 expectedTotal;
        for (uint256 j; j < n; ++j) {
            Agreement storage a = _agreements[picked[j]];
            uint256 units = _maxVoucher(a);
            calls[j] = _sponsoredClaimCall(a, units, deadline);
            expectedTotal += (units - a.claimedUnits) * a.terms.unitPrice;
        }
        if (!atomic) calls[n] = calls[0];

        address seller = sellers[s];
        uint256 sellerBefore = usdc.balanceOf(seller);
        vm.prank(relayer);
        try escrow.batch(calls, atomic) returns (bool[] memory succeeded) {
            for (uint256 j; j < calls.length; ++j) {
                if (succeeded[j] != (j < n)) _mismatch("batch call outcome");
            }
        } catch {
            _unexpectedRevert("batch");
            return;
        }
        _check(usdc.balanceOf(seller) == sellerBefore + expectedTotal, "batch paid the seller");
        for (uint256 j; j < n; ++j) {
            Agreement storage a = _agreements[picked[j]];
            uint256 units = _maxVoucher(a);
            uint256 amount = (units - a.claimedUnits) * a.terms.unitPrice;
            a.paidToSeller += amount;
            a.claimedUnits = units;
            if (units == a.terms.quantity) {
                a.status = UsageEscrow.Status.Settled;
                a.buyerWithdrawn = true;
                _hit(CLAIM_SETTLES_FULL);
            }
        }
        uint256 received = _received(seller, sellerBefore);
        ghostPaidToSellers += received;
        ghostReceived[seller] += received;
        _hit(atomic ? BATCH_ATOMIC : BATCH_PARTIAL);
        _checkAll();
    }

    /// @notice The relayer sends `sellerClaimBatch` over up to 20 claimable agreements of all
    /// sellers (their highest vouchers, sellers interleaved), ending with a replay of its first
    /// claim, which must be skipped. In one call out of four the last claim's authorization has
    /// lapsed; in another one, a seller is blacklisted while the batch runs. Those claims must be
    /// skipped and their agreements left as they were, and every other claim paid.
    function claimBatch(uint256 startSeed, uint256 countSeed, uint256 mode) public {
        if (!_ensureAgreement(startSeed)) return;
        uint256[] memory picked = _claimable(startSeed, _bound(countSeed, 1, MAX_BATCH));
        uint256 n = picked.length;
        if (n == 0) return;
        bool lapsed = mode % 4 == 3;
        // The seller of one of the claims, or ACTORS for none.
        uint256 refused = mode % 4 == 2 ? _agreements[picked[(mode >> 8) % n]].sellerIdx : ACTORS;

        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](n + 1);
        bool[] memory pays = new bool[](n);
        uint256[ACTORS] memory owed;
        uint256 paying;
        for (uint256 j; j < n; ++j) {
            Agreement storage a = _agreements[picked[j]];
            bool lapses = lapsed && j == n - 1;
            uint256 deadline = lapses ? block.timestamp - 1 : block.timestamp + (countSeed % 1 days);
            claims[j] = _sponsoredClaim(a, _maxVoucher(a), deadline);
            if (lapses || a.sellerIdx == refused) continue;
            pays[j] = true;
            ++paying;
            owed[a.sellerIdx] += (_maxVoucher(a) - a.claimedUnits) * a.terms.unitPrice;
        }
        claims[n] = claims[0];

        uint256[ACTORS] memory before;
        for (uint256 k; k < ACTORS; ++k) {
            before[k] = usdc.balanceOf(sellers[k]);
        }
        (uint256 claimedLogs, uint256 skippedLogs) = _sendClaimBatch(claims, refused);
        if (claimedLogs != paying || skippedLogs != n + 1 - paying) {
            _mismatch("sellerClaimBatch: a claim neither paid nor skipped once");
        }
        for (uint256 k; k < ACTORS; ++k) {
            _checkPaid(sellers[k], before[k], owed[k], "batch paid each seller its sum");
            uint256 received = _received(sellers[k], before[k]);
            ghostPaidToSellers += received;
            ghostReceived[sellers[k]] += received;
        }
        for (uint256 j; j < n; ++j) {
            if (!pays[j]) continue;
            Agreement storage a = _agreements[picked[j]];
            uint256 units = _maxVoucher(a);
            a.paidToSeller += (units - a.claimedUnits) * a.terms.unitPrice;
            a.claimedUnits = units;
            if (units == a.terms.quantity) {
                a.status = UsageEscrow.Status.Settled;
                a.buyerWithdrawn = true;
                _hit(CLAIM_SETTLES_FULL);
            }
        }
        if (paying != 0) _hit(CLAIM_BATCH_PAID);
        _hit(CLAIM_BATCH_SKIPPED);
        if (lapsed) _hit(CLAIM_BATCH_SKIPPED_LAPSED);
        if (refused < ACTORS) _hit(CLAIM_BATCH_PAYOUT_REFUSED);
        _checkAll();
    }

    /// @dev Sends the batch as the relayer, with seller `refused` (unless it is ACTORS)
    /// blacklisted meanwhile; counts the escrow's UsageClaimed and ClaimSkipped logs. The batch
    /// itself must never revert.
    function _sendClaimBatch(UsageEscrow.SponsoredClaim[] memory claims, uint256 refused)
        internal
        returns (uint256 claimedLogs, uint256 skippedLogs)
    {
        if (refused < ACTORS) {
            vm.prank(usdc.blacklister());
            usdc.blacklist(sellers[refused]);
        }
        vm.recordLogs();
        vm.prank(relayer);
        try escrow.sellerClaimBatch(claims) {}
        catch (bytes memory e) {
            _unexpectedRevert(string.concat("sellerClaimBatch reverted: ", _hex4(e)));
        }
        Vm.Log[] memory logs = vm.getRecordedLogs();
        if (refused < ACTORS) {
            vm.prank(usdc.blacklister());
            usdc.unBlacklist(sellers[refused]);
        }
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != address(escrow)) continue;
            if (logs[i].topics[0] == UsageEscrow.UsageClaimed.selector) ++claimedLogs;
            if (logs[i].topics[0] == UsageEscrow.ClaimSkipped.selector) ++skippedLogs;
        }
    }

    /// @dev Up to `limit` open agreements with a voucher above what was claimed, in index order
    /// from `seed`'s position (so sellers come interleaved).
    function _claimable(uint256 seed, uint256 limit) internal view returns (uint256[] memory picked) {
        uint256 len = _agreements.length;
        picked = new uint256[](limit);
        uint256 n;
        uint256 start = seed % len;
        for (uint256 k; k < len && n < limit; ++k) {
            uint256 i = (start + k) % len;
            Agreement storage a = _agreements[i];
            if (_open(a) && _maxVoucher(a) > a.claimedUnits) picked[n++] = i;
        }
        assembly ("memory-safe") {
            mstore(picked, n)
        }
    }

    function _sponsoredClaim(Agreement storage a, uint256 units, uint256 deadline)
        internal
        view
        returns (UsageEscrow.SponsoredClaim memory)
    {
        return UsageEscrow.SponsoredClaim({
            terms: a.terms,
            cumulativeUnits: units,
            voucherSignature: _signVoucher(a, units),
            deadline: deadline,
            authorization: _sign(_sellerKeys[a.sellerIdx], escrow.sellerClaimDigest(a.key, units, deadline))
        });
    }

    /// @notice The buyer or the seller closes, directly or sponsored; the seller with one of its
    /// vouchers (or none) as the final one.
    function close(uint256 agreementSeed, uint256 mode, uint256 finalSeed) public {
        if (!_ensureAgreement(agreementSeed)) return;
        _close(_agreements[_index(agreementSeed, false)], mode % 4, finalSeed);
    }

    function _close(Agreement storage a, uint256 mode, uint256 finalSeed) internal {
        bool bySeller = mode >= 2;
        bool sponsored = mode % 2 == 1;
        uint256 finalUnits = bySeller && finalSeed % 4 != 0 ? _voucher(a, finalSeed >> 2) : 0;
        uint256 sellerBefore = usdc.balanceOf(a.terms.seller);
        uint256 buyerBefore = usdc.balanceOf(a.terms.buyer);
        (bool ok, bytes memory err) =
            _sendClose(a, bySeller, sponsored, finalUnits, block.timestamp + (finalSeed % 1 days));
        if (!_outcome("close", ok, err, _closeExpectation(a, bySeller))) return;
        _checkPaid(a.terms.buyer, buyerBefore, 0, "a close pays the buyer nothing");
        if (!ok) {
            _checkPaid(a.terms.seller, sellerBefore, 0, "refused close paid");
            _hit(CLOSE_REFUSED);
        } else if (!bySeller) {
            a.status = UsageEscrow.Status.Closing;
            // The window runs from the close, or from expiry for a close after it.
            a.closesAt = _min(block.timestamp, a.terms.expiry) + a.terms.closeWindow;
            _checkPaid(a.terms.seller, sellerBefore, 0, "a buyer's close pays the seller nothing");
            _hit(sponsored ? CLOSE_BUYER_SPONSORED : CLOSE_BUYER);
        } else {
            uint256 amount;
            if (finalUnits > a.claimedUnits) {
                amount = (finalUnits - a.claimedUnits) * a.terms.unitPrice;
                a.claimedUnits = finalUnits;
                _hit(CLOSE_SELLER_PAYS);
            }
            _paySeller(a, sellerBefore, amount);
            a.status = UsageEscrow.Status.Settled;
            a.buyerWithdrawn = a.claimedUnits == a.terms.quantity;
            _hit(sponsored ? CLOSE_SELLER_SPONSORED : CLOSE_SELLER);
        }
        _checkAll();
    }

    /// @dev A buyer closes `Active` only; a seller `Active` or `Closing`.
    function _closeExpectation(Agreement storage a, bool bySeller) internal view returns (bytes memory) {
        bool allowed = a.status == UsageEscrow.Status.Active || (bySeller && a.status == UsageEscrow.Status.Closing);
        if (allowed) return "";
        return abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, a.status);
    }

    function _sendClose(Agreement storage a, bool bySeller, bool sponsored, uint256 finalUnits, uint256 deadline)
        internal
        returns (bool ok, bytes memory err)
    {
        UsageEscrow.Activation memory t = a.terms;
        address party = bySeller ? t.seller : t.buyer;
        bytes memory voucher = finalUnits == 0 ? bytes("") : _signVoucher(a, finalUnits);
        if (sponsored) {
            uint256 signer = bySeller ? _sellerKeys[a.sellerIdx] : _buyerKeys[a.buyerIdx];
            bytes memory auth = _sign(signer, escrow.initiateCloseDigest(a.key, party, finalUnits, deadline));
            vm.prank(relayer);
            try escrow.initiateCloseWithAuthorization(t, party, finalUnits, voucher, deadline, auth) {
                ok = true;
            } catch (bytes memory e) {
                err = e;
            }
        } else {
            vm.prank(party);
            try escrow.initiateClose(t, finalUnits, voucher) {
                ok = true;
            } catch (bytes memory e) {
                err = e;
            }
        }
    }

    /// @notice The buyer withdraws, directly or sponsored, whenever; the model predicts whether the
    /// window is open.
    function withdraw(uint256 agreementSeed, bool sponsored) public {
        if (!_ensureAgreement(agreementSeed)) return;
        _withdraw(_agreements[_index(agreementSeed, false)], sponsored);
    }

    function _withdraw(Agreement storage a, bool sponsored) internal {
        UsageEscrow.Activation memory t = a.terms;
        uint256 deadline = block.timestamp + 1 hours;
        bytes memory auth =
            sponsored ? _sign(_buyerKeys[a.buyerIdx], escrow.buyerWithdrawDigest(a.key, deadline)) : bytes("");

        uint256 opensAt = _opensAt(a);
        uint256 viewOpensAt = escrow.withdrawOpensAt(t);
        if (viewOpensAt != (a.buyerWithdrawn ? type(uint256).max : opensAt)) {
            _mismatch("withdrawOpensAt");
        }
        bytes memory expected;
        if (a.buyerWithdrawn) {
            expected = abi.encodeWithSelector(UsageEscrow.AlreadyWithdrawn.selector);
        } else if (block.timestamp < opensAt) {
            expected = abi.encodeWithSelector(UsageEscrow.WithdrawNotOpen.selector, opensAt);
        }

        uint256 buyerBefore = usdc.balanceOf(t.buyer);
        bool ok;
        bytes memory err;
        if (sponsored) {
            vm.prank(relayer);
            try escrow.buyerWithdrawWithAuthorization(t, deadline, auth) {
                ok = true;
            } catch (bytes memory e) {
                err = e;
            }
        } else {
            vm.prank(t.buyer);
            try escrow.buyerWithdraw(t) {
                ok = true;
            } catch (bytes memory e) {
                err = e;
            }
        }
        if (!_outcome("withdraw", ok, err, expected)) return;
        if (!ok) {
            _checkPaid(t.buyer, buyerBefore, 0, "refused withdraw paid");
            _hit(a.buyerWithdrawn ? WITHDRAW_REFUSED_DONE : WITHDRAW_REFUSED_NOT_OPEN);
            _checkAll();
            return;
        }
        uint256 amount = (t.quantity - a.claimedUnits) * t.unitPrice;
        _checkPaid(t.buyer, buyerBefore, amount, "withdraw paid the rest");
        uint256 received = _received(t.buyer, buyerBefore);
        a.paidToBuyer += received;
        ghostPaidToBuyers += received;
        ghostReceived[t.buyer] += received;
        if (a.status == UsageEscrow.Status.Active) _hit(WITHDRAW_AFTER_EXPIRY);
        a.status = UsageEscrow.Status.Settled;
        a.buyerWithdrawn = true;
        _hit(sponsored ? WITHDRAW_SPONSORED : WITHDRAW_DIRECT);
        _checkAll();
    }

    /// @notice Time passes: up to two days.
    function warp(uint256 secondsSeed) public {
        vm.warp(block.timestamp + _bound(secondsSeed, 0, 2 days));
        _hit(WARP);
        _checkAll();
    }

    /// @notice Time jumps to one second before, at, or after an agreement's withdraw boundary
    /// (never backwards).
    function warpToBoundary(uint256 agreementSeed, uint256 offsetSeed) public {
        if (!_ensureAgreement(agreementSeed)) return;
        Agreement storage a = _agreements[_index(agreementSeed, false)];
        uint256 boundary =
            a.status == UsageEscrow.Status.Closing && a.closesAt < _expiryOpen(a) ? a.closesAt : _expiryOpen(a);
        uint256 target = boundary + (offsetSeed % 3) - 1;
        if (target > block.timestamp) {
            vm.warp(target);
            _hit(WARP_TO_BOUNDARY);
        }
        _checkAll();
    }

    function _sponsoredClaimCall(Agreement storage a, uint256 units, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        bytes memory voucher = _signVoucher(a, units);
        bytes memory auth = _sign(_sellerKeys[a.sellerIdx], escrow.sellerClaimDigest(a.key, units, deadline));
        return abi.encodeCall(UsageEscrow.sellerClaimWithAuthorization, (a.terms, units, voucher, deadline, auth));
    }

    // ================================================================ end of a run

    /// @notice Ends every agreement: time moves past every withdraw boundary, each seller claims
    /// its highest voucher where it still can, and each buyer withdraws. Not a fuzz target.
    function drain() external {
        uint256 latest = block.timestamp;
        for (uint256 i; i < _agreements.length; ++i) {
            Agreement storage a = _agreements[i];
            if (_expiryOpen(a) > latest) latest = _expiryOpen(a);
            if (a.closesAt > latest) latest = a.closesAt;
        }
        vm.warp(latest);
        for (uint256 i; i < _agreements.length; ++i) {
            Agreement storage a = _agreements[i];
            if (_open(a) && _maxVoucher(a) > a.claimedUnits) _claim(a, _maxVoucher(a), i % 2, i);
            if (!a.buyerWithdrawn) _withdraw(a, i % 2 == 1);
        }
    }

    // ================================================================ views for the invariants

    function agreementCount() external view returns (uint256) {
        return _agreements.length;
    }

    /// @notice The terms, key, deposit and payments of agreement `i`.
    function agreementAt(uint256 i)
        external
        view
        returns (
            UsageEscrow.Activation memory terms,
            bytes32 key,
            uint256 deposit,
            uint256 paidToSeller,
            uint256 paidToBuyer,
            uint256 highestClaimedSeen
        )
    {
        Agreement storage a = _agreements[i];
        return (a.terms, a.key, a.deposit, a.paidToSeller, a.paidToBuyer, a.highestClaimedSeen);
    }

    /// @notice The highest voucher the seller of agreement `i` holds.
    function maxVoucherOf(uint256 i) external view returns (uint256) {
        return _maxVoucher(_agreements[i]);
    }

    function buyerKeyOf(uint256 i) external view returns (uint256) {
        return _buyerKeys[_agreements[i].buyerIdx];
    }

    function sellerKeyOf(uint256 i) external view returns (uint256) {
        return _sellerKeys[_agreements[i].sellerIdx];
    }

    function hitsOf(uint256 path) external view returns (uint256) {
        return hits[path];
    }

    // ================================================================ internals

    /// @dev Activates an agreement first when there is none, so every call of a run does
    /// something; false only when that activation failed (already recorded).
    function _ensureAgreement(uint256 seed) internal returns (bool) {
        if (_agreements.length == 0) {
            activate(seed, seed >> 8, seed >> 16, seed >> 24, seed >> 32, seed >> 40);
        }
        return _agreements.length != 0;
    }

    function _maxVoucher(Agreement storage a) internal view returns (uint256 top) {
        for (uint256 i; i < a.vouchers.length; ++i) {
            if (a.vouchers[i] > top) top = a.vouchers[i];
        }
    }

    /// @dev One of the seller's vouchers (0 when it holds none; the buyer would sign it anyway):
    /// half of the time the highest, which a seller would use; otherwise any, old ones included.
    function _voucher(Agreement storage a, uint256 seed) internal view returns (uint256) {
        if (a.vouchers.length == 0) return 0;
        if (seed % 2 == 0) return _maxVoucher(a);
        return a.vouchers[(seed >> 1) % a.vouchers.length];
    }

    /// @dev An agreement index for `seed`: three times out of four the first agreement from
    /// `seed`'s position that is still open (active or closing) and, when `claimable`, has a
    /// voucher above what was claimed, so actions mostly meet live agreements; otherwise (or when
    /// there is none) any agreement, settled ones included.
    function _index(uint256 seed, bool claimable) internal view returns (uint256) {
        uint256 n = _agreements.length;
        uint256 start = seed % n;
        if (uint256(keccak256(abi.encode(seed))) % 4 == 0) return start;
        for (uint256 k; k < n; ++k) {
            uint256 i = (start + k) % n;
            Agreement storage a = _agreements[i];
            if (_open(a) && (!claimable || _maxVoucher(a) > a.claimedUnits)) return i;
        }
        return start;
    }

    /// @dev Active or closing: the seller may still claim.
    function _open(Agreement storage a) internal view returns (bool) {
        return a.status == UsageEscrow.Status.Active || a.status == UsageEscrow.Status.Closing;
    }

    function _expiryOpen(Agreement storage a) internal view returns (uint256) {
        return a.terms.expiry + a.terms.closeWindow;
    }

    /// @dev The documented rule: settled → open; closing → the end of the close window or
    /// expiry + window, whichever is first (which is `closesAt`); active → expiry + window.
    function _opensAt(Agreement storage a) internal view returns (uint256) {
        if (a.status == UsageEscrow.Status.Settled) return 0;
        uint256 opensAt = _expiryOpen(a);
        if (a.status == UsageEscrow.Status.Closing && a.closesAt < opensAt) opensAt = a.closesAt;
        return opensAt;
    }

    function _paySeller(Agreement storage a, uint256 sellerBefore, uint256 amount) internal {
        address seller = a.terms.seller;
        _checkPaid(seller, sellerBefore, amount, "seller paid the increase");
        uint256 received = _received(seller, sellerBefore);
        a.paidToSeller += received;
        ghostPaidToSellers += received;
        ghostReceived[seller] += received;
    }

    /// @dev Compares an outcome with the prediction; false when it differs (already recorded).
    function _outcome(string memory what, bool ok, bytes memory err, bytes memory expected) internal returns (bool) {
        if (expected.length == 0) {
            if (!ok) {
                _unexpectedRevert(string.concat(what, " reverted: ", _hex4(err)));
                return false;
            }
            return true;
        }
        if (ok) {
            unexpectedSuccesses += 1;
            _fail(string.concat(what, " succeeded but should have reverted"));
            return false;
        }
        if (keccak256(err) != keccak256(expected)) {
            wrongErrors += 1;
            _fail(string.concat(what, " reverted with another error: ", _hex4(err)));
            return false;
        }
        return true;
    }

    /// @dev After every action: the chain agrees with the model for every agreement, and
    /// claimedUnits never went down nor above quantity.
    function _checkAll() internal {
        for (uint256 i; i < _agreements.length; ++i) {
            Agreement storage a = _agreements[i];
            UsageEscrow.Escrow memory e = escrow.escrowOf(a.key);
            if (e.claimedUnits < a.highestClaimedSeen) {
                claimedUnitsDecreases += 1;
                _fail("claimedUnits decreased");
            }
            if (e.claimedUnits > a.highestClaimedSeen) a.highestClaimedSeen = e.claimedUnits;
            if (
                e.status != a.status || e.buyerWithdrawn != a.buyerWithdrawn || e.claimedUnits != a.claimedUnits
                    || (a.status == UsageEscrow.Status.Closing && e.closesAt != a.closesAt)
            ) {
                _mismatch("escrow state differs from the model");
            }
        }
    }

    function _checkPaid(address payee, uint256 before, uint256 amount, string memory what) internal {
        _check(usdc.balanceOf(payee) == before + amount, what);
    }

    function _check(bool condition, string memory what) internal {
        if (!condition) {
            paymentMismatches += 1;
            _fail(what);
        }
    }

    function _mismatch(string memory what) internal {
        modelMismatches += 1;
        _fail(what);
    }

    function _unexpectedRevert(string memory what) internal {
        unexpectedReverts += 1;
        _fail(what);
    }

    function _fail(string memory what) internal {
        if (bytes(firstFailure).length == 0) firstFailure = what;
    }

    /// @dev What `payee` received since `before`; a decrease is a failure and counts as 0.
    function _received(address payee, uint256 before) internal returns (uint256) {
        uint256 balance = usdc.balanceOf(payee);
        if (balance < before) {
            _check(false, "payee balance went down");
            return 0;
        }
        return balance - before;
    }

    function _min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }

    function _hit(uint256 path) internal {
        hits[path] += 1;
    }

    function _hex4(bytes memory err) internal pure returns (string memory) {
        if (err.length < 4) return "(no selector)";
        bytes memory digits = "0123456789abcdef";
        bytes memory out = new bytes(10);
        out[0] = "0";
        out[1] = "x";
        for (uint256 i; i < 4; ++i) {
            out[2 + 2 * i] = digits[uint8(err[i]) >> 4];
            out[3 + 2 * i] = digits[uint8(err[i]) & 0x0f];
        }
        return string(out);
    }

    // ---------------------------------------------------------------- signing

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _signVoucher(Agreement storage a, uint256 units) internal view returns (bytes memory) {
        return _sign(_buyerKeys[a.buyerIdx], escrow.usageVoucherDigest(a.key, units));
    }

    function _fundingDigest(UsageEscrow.Activation memory t, bytes32 key, uint256 deposit)
        internal
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                usdc.RECEIVE_WITH_AUTHORIZATION_TYPEHASH(), t.buyer, address(escrow), deposit, 0, t.activateBy, key
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", usdc.DOMAIN_SEPARATOR(), structHash));
    }

    /// @dev The buyer's ReceiveWithAuthorization of the fee to the escrow, nonce from the key.
    function _feeAuthorizationDigest(UsageEscrow.Activation memory t, bytes32 key) internal view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                usdc.RECEIVE_WITH_AUTHORIZATION_TYPEHASH(),
                t.buyer,
                address(escrow),
                t.infraFee,
                0,
                t.activateBy,
                escrow.infraFeeNonce(key)
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", usdc.DOMAIN_SEPARATOR(), structHash));
    }

    /// @dev Buyer `b` signs an EIP-2612 permit to the relayer and it is submitted: the buyer's
    /// permit nonce moves (which broke pending v2 fee permits).
    function _permitElsewhere(uint256 b) internal {
        address owner = buyers[b];
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash =
            keccak256(abi.encode(usdc.PERMIT_TYPEHASH(), owner, relayer, 1, usdc.nonces(owner), deadline));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", usdc.DOMAIN_SEPARATOR(), structHash));
        usdc.permit(owner, relayer, 1, deadline, _sign(_buyerKeys[b], digest));
    }

    /// @dev Maps `x` into [min, max] (uniform enough for a handler).
    function _bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        if (x >= min && x <= max) return x;
        uint256 size = max - min + 1;
        return size == 0 ? x : min + (x % size);
    }
}
