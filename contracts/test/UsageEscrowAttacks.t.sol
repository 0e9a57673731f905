// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";
import {IFiatToken} from "../src/interfaces/IFiatToken.sol";
import {ISanctionsOracle} from "../src/interfaces/ISanctionsOracle.sol";
import {MockUSDC} from "../src/mocks/MockUSDC.sol";
import {MockUSDCAuthorizations} from "../src/mocks/MockUSDCAuthorizations.sol";
import {CallbackUSDC, ITokenTransferHook} from "../src/mocks/CallbackUSDC.sol";
import {FeeOnTransferUSDC} from "../src/mocks/FeeOnTransferUSDC.sol";

/// @notice A party (buyer or seller) that is a contract: it signs under ERC-1271 with its signer's
/// key and, once armed, calls back into the escrow from CallbackUSDC's transfer hook, recording
/// what the escrow answered.
contract ReentrantParty is ITokenTransferHook, IERC1271 {
    address public immutable controller;
    address public immutable signer;
    address public immutable token;

    address internal _target;
    bytes internal _attack;
    bool public armed;
    uint256 public attempts;
    bool public attackSucceeded;
    bytes public attackResult;

    constructor(address signer_, address token_) {
        controller = msg.sender;
        signer = signer_;
        token = token_;
    }

    /// @notice The next hook call runs `data` on `target` (once).
    function arm(address target, bytes calldata data) external {
        require(msg.sender == controller, "not controller");
        (_target, _attack, armed) = (target, data, true);
    }

    /// @notice Calls `target` as this party, bubbling up a revert.
    function execute(address target, bytes calldata data) external returns (bytes memory result) {
        require(msg.sender == controller, "not controller");
        bool ok;
        (ok, result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }

    function onTokenTransfer(address, address, uint256) external {
        if (msg.sender != token || !armed) return;
        armed = false;
        ++attempts;
        (attackSucceeded, attackResult) = _target.call(_attack);
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        return err == ECDSA.RecoverError.NoError && recovered == signer
            ? IERC1271.isValidSignature.selector
            : bytes4(0xffffffff);
    }
}

/// @notice An "oracle" that answers every call with no return data.
contract SilentOracle {
    fallback() external {}
}

/// @notice An "oracle" that answers a non-boolean word (2) to every call.
contract GarbageOracle {
    fallback() external {
        assembly {
            mstore(0, 2)
            return(0, 32)
        }
    }
}

/// @notice One test per attack in DESIGN.md ("The escrow contract"), each showing it refused and
/// that no money moved where it should not.
/// @dev The default terms (EscrowFixture._terms): 100 units at 0.10 USDC, a 0.10 USDC fee,
/// activate within an hour, expiry in a day, a one-hour close window. The deposit is 10 USDC.
contract UsageEscrowAttacksTest is EscrowFixture {
    uint256 internal constant PRICE = 100_000;
    uint256 internal constant DEPOSIT = 10_000_000;
    uint256 internal constant FEE = 100_000;
    /// @dev The secp256k1 group order: (r, n - s) with the other v is the high-s twin of (r, s).
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    address internal attacker = address(0xA77AC4);

    // ---------------------------------------------------------------- helpers

    /// @dev Signs `t` for deployment `other` instead of the default escrow.
    function _signAllFor(UsageEscrow other, UsageEscrow.Activation memory t)
        internal
        returns (bytes memory activationSig, bytes memory fundingSig, bytes memory feeSig)
    {
        UsageEscrow home = escrow;
        escrow = other;
        (activationSig, fundingSig, feeSig) = _signAll(t);
        escrow = home;
    }

    /// @dev Puts the implementation `token` behind a proxy, redeploys the escrow on it, funds the
    /// buyer with it, and makes it the fixture's; returns the token (the proxy).
    function _useToken(MockUSDC implementation) internal returns (MockUSDC token) {
        token = _behindProxy(implementation);
        usdc = token;
        escrow = _deployEscrow(IFiatToken(address(token)));
        token.mint(buyer, 1_000_000 * USDC);
    }

    function _sanction(address account) internal {
        address[] memory list = new address[](1);
        list[0] = account;
        oracle.addToSanctionsList(list);
    }

    /// @dev Redeploys the escrow against `oracleAddress` (which may be anything, even no code).
    function _useOracle(address oracleAddress) internal {
        escrow = new UsageEscrow(IFiatToken(address(usdc)), ISanctionsOracle(oracleAddress), feeRecipient);
    }

    /// @dev Signs `t`, warps to `when` and has the relayer activate it; expects `expectedError`
    /// when it is not empty.
    function _activateAt(UsageEscrow.Activation memory t, uint256 when, bytes memory expectedError)
        internal
        returns (bytes32 key)
    {
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        vm.warp(when);
        vm.prank(relayer);
        if (expectedError.length != 0) vm.expectRevert(expectedError);
        key = escrow.activate(t, a, f, p);
    }

    /// @dev The deadline of `_sponsoredClaimAt`'s authorization: ten minutes after activation.
    uint256 internal constant CLAIM_DEADLINE = START + 10 minutes;

    /// @dev Activates the default terms, then at `when` the relayer submits a 30-unit claim whose
    /// seller authorization runs to CLAIM_DEADLINE.
    function _sponsoredClaimAt(uint256 when, bytes memory expectedError) internal {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        vm.warp(when);
        _claimWithAuthorization(t, 30, CLAIM_DEADLINE, expectedError);
    }

    /// @dev Activates `t` and has the buyer close it; returns when the close window ends.
    function _activateAndCloseAsBuyer(UsageEscrow.Activation memory t) internal returns (uint256 closesAt) {
        bytes32 key = _activate(t);
        _closeAsBuyer(t);
        closesAt = escrow.escrowOf(key).closesAt;
    }

    /// @dev The buyer withdraws now and gets the whole deposit back.
    function _assertWithdrawRefundsDeposit(UsageEscrow.Activation memory t) internal {
        uint256 buyerBefore = usdc.balanceOf(buyer);
        _withdrawAsBuyer(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore + DEPOSIT);
    }

    function _split(bytes memory sig) internal pure returns (bytes32 r, bytes32 s, uint8 v) {
        assembly ("memory-safe") {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
    }

    /// @dev The same signature with s mirrored to n - s and v flipped: ecrecover still accepts it.
    function _highS(bytes memory sig) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s, uint8 v) = _split(sig);
        return abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    function _withV(bytes memory sig, uint8 newV) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s,) = _split(sig);
        return abi.encodePacked(r, s, newV);
    }

    // ================================================================ front-run fee authorization

    /// Someone submits the buyer's infra-fee authorization to the token first, as a
    /// ReceiveWithAuthorization (only the escrow, its payee, may) or as a TransferWithAuthorization
    /// (another typehash, so the signature does not verify): both fail, the fee nonce stays unused,
    /// and the activation then takes the fee once.
    function test_FrontRunFeeAuthorizationFailsAndActivationTakesTheFeeOnce() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        bytes32 feeNonce = escrow.infraFeeNonce(_keyOf(t));
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.startPrank(attacker);
        vm.expectRevert(_err(MockUSDCAuthorizations.CallerMustBePayee.selector));
        usdc.receiveWithAuthorization(buyer, address(escrow), FEE, 0, t.activateBy, feeNonce, p);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        usdc.receiveWithAuthorization(buyer, attacker, FEE, 0, t.activateBy, feeNonce, p);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        usdc.transferWithAuthorization(buyer, address(escrow), FEE, 0, t.activateBy, feeNonce, p);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        usdc.transferWithAuthorization(buyer, attacker, FEE, 0, t.activateBy, feeNonce, p);
        vm.stopPrank();
        assertEq(usdc.balanceOf(buyer), buyerBefore);
        assertFalse(usdc.authorizationState(buyer, feeNonce), "fee nonce untouched");

        vm.prank(relayer);
        bytes32 key = escrow.activate(t, a, f, p);

        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Active));
        assertEq(escrow.accruedFees(), FEE, "fee taken once");
        assertEq(usdc.balanceOf(buyer), buyerBefore - DEPOSIT - FEE);
        assertEq(usdc.balanceOf(address(escrow)), DEPOSIT + FEE);
        assertEq(usdc.balanceOf(attacker), 0);
    }

    // ================================================================ transferWithAuthorization front-run

    /// The funding signature is a ReceiveWithAuthorization: submitted to the token as a
    /// TransferWithAuthorization (to the escrow or anywhere else) it does not verify.
    function test_RevertWhen_FundingSignatureSubmittedAsTransferWithAuthorization() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        bytes32 key = _keyOf(t);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(attacker);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        usdc.transferWithAuthorization(buyer, address(escrow), DEPOSIT, 0, t.activateBy, key, f);
        vm.prank(attacker);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        usdc.transferWithAuthorization(buyer, attacker, DEPOSIT, 0, t.activateBy, key, f);
        assertEq(usdc.balanceOf(buyer), buyerBefore);
        assertFalse(usdc.authorizationState(buyer, key), "funding nonce untouched");

        vm.prank(relayer);
        escrow.activate(t, a, f, p);
        _assertEscrowHolds(DEPOSIT, "the real activation still goes through");
        assertEq(usdc.balanceOf(attacker), 0);
    }

    /// Only the payee (the escrow) may submit a receiveWithAuthorization, so the funding signature
    /// cannot be spent outside activation.
    function test_RevertWhen_FundingSignatureSubmittedByAnotherCaller() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        bytes32 key = _keyOf(t);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(attacker);
        vm.expectRevert(_err(MockUSDCAuthorizations.CallerMustBePayee.selector));
        usdc.receiveWithAuthorization(buyer, address(escrow), DEPOSIT, 0, t.activateBy, key, f);
        vm.prank(attacker);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        usdc.receiveWithAuthorization(buyer, attacker, DEPOSIT, 0, t.activateBy, key, f);
        assertEq(usdc.balanceOf(buyer), buyerBefore);

        vm.prank(relayer);
        escrow.activate(t, a, f, p);
        _assertEscrowHolds(DEPOSIT);
        assertEq(usdc.balanceOf(attacker), 0);
    }

    // ================================================================ terms changed by the relayer

    /// A relayer that swaps in its own address as seller changes the key: the buyer's signature
    /// no longer verifies.
    function test_RevertWhen_RelayerRedirectsTheSeller() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        t.seller = relayer;
        _expectActivateRevert(t, a, f, p, _err(UsageEscrow.InvalidSignature.selector));
    }

    /// Every single term is bound by the key.
    function test_RevertWhen_RelayerChangesAnyTerm() public {
        UsageEscrow.Activation memory signed = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(signed);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        for (uint256 field; field < 10; ++field) {
            UsageEscrow.Activation memory t = _terms();
            if (field == 0) t.buyer = attacker;
            if (field == 1) t.seller = attacker;
            if (field == 2) t.unitPrice += 1;
            if (field == 3) t.quantity += 1;
            if (field == 4) t.infraFee += 1;
            if (field == 5) t.activateBy += 1;
            if (field == 6) t.expiry += 1;
            if (field == 7) t.closeWindow += 1;
            if (field == 8) t.salt = keccak256("relayer's salt");
            if (field == 9) t.agreementId = keccak256("relayer's id");

            vm.prank(relayer);
            vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
            escrow.activate(t, a, f, p);
        }
        assertEq(usdc.balanceOf(buyer), buyerBefore);
        _assertEscrowHolds(0);
    }

    // ================================================================ funding reused for other terms

    /// The funding nonce is the agreement key, so a funding signature funds its own terms only,
    /// even when the other terms ask for the same deposit and carry a valid buyer signature.
    function test_RevertWhen_FundingSignatureReusedForOtherTerms() public {
        UsageEscrow.Activation memory first = _terms();
        UsageEscrow.Activation memory second = _terms();
        second.salt = keccak256("second");
        (bytes memory a1, bytes memory f1, bytes memory p1) = _signAll(first);
        bytes memory a2 = _signActivation(buyerKey, second);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(relayer);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector)); // the token refuses it
        escrow.activate(second, a2, f1, p1);
        assertEq(usdc.balanceOf(buyer), buyerBefore);

        // Once used for its own terms it cannot fund the others either.
        vm.prank(relayer);
        escrow.activate(first, a1, f1, p1);
        bytes memory p2 = _signFeeAuthorization(buyerKey, second);
        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        vm.prank(relayer);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        escrow.activate(second, a2, f1, p2);
        assertEq(usdc.balanceOf(address(escrow)), escrowBefore);
    }

    // ================================================================ replay across chain

    function test_RevertWhen_ActivationReplayedOnAnotherChain() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        bytes32 homeKey = _keyOf(t);

        vm.chainId(8453);
        assertTrue(_keyOf(t) != homeKey, "the key carries the chain id");
        uint256 buyerBefore = usdc.balanceOf(buyer);
        vm.prank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.activate(t, a, f, p);
        assertEq(usdc.balanceOf(buyer), buyerBefore);
    }

    function test_RevertWhen_VoucherReplayedFromAnotherChain() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 home = block.chainid;
        vm.chainId(8453);
        bytes memory foreignVoucher = _signVoucher(buyerKey, t, 30);
        vm.chainId(home);

        _expectClaimRevert(t, 30, foreignVoucher, _err(UsageEscrow.InvalidSignature.selector));
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_AuthorizationsReplayedFromAnotherChain() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        uint256 home = block.chainid;
        vm.chainId(8453);
        bytes memory claimAuth = _signClaim(sellerKey, t, 30, deadline);
        bytes memory closeAuth = _signClose(buyerKey, t, buyer, 0, deadline);
        uint256 withdrawDeadline = t.expiry + t.closeWindow + 10 minutes;
        bytes memory withdrawAuth = _signWithdraw(buyerKey, t, withdrawDeadline);
        vm.chainId(home);

        vm.startPrank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.sellerClaimWithAuthorization(t, 30, voucher, deadline, claimAuth);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.initiateCloseWithAuthorization(t, buyer, 0, "", deadline, closeAuth);
        vm.warp(t.expiry + t.closeWindow);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.buyerWithdrawWithAuthorization(t, withdrawDeadline, withdrawAuth);
        vm.stopPrank();
        _assertEscrowHolds(DEPOSIT);
    }

    // ================================================================ replay across contract

    function test_RevertWhen_ActivationReplayedOnAnotherDeployment() public {
        UsageEscrow other = _deployEscrow(IFiatToken(address(usdc)));
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        assertTrue(other.agreementKey(t) != escrow.agreementKey(t), "the key carries the contract");
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        other.activate(t, a, f, p);
        assertEq(usdc.balanceOf(buyer), buyerBefore);
    }

    /// Even with a buyer signature valid for the other deployment, the funding authorization
    /// names its escrow as payee and nonce, so it cannot fund another one.
    function test_RevertWhen_FundingReplayedOnAnotherDeployment() public {
        UsageEscrow other = _deployEscrow(IFiatToken(address(usdc)));
        UsageEscrow.Activation memory t = _terms();
        t.infraFee = 0;
        (, bytes memory homeFunding,) = _signAll(t);
        (bytes memory otherActivation,,) = _signAllFor(other, t);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(relayer);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        other.activate(t, otherActivation, homeFunding, "");
        assertEq(usdc.balanceOf(buyer), buyerBefore);
    }

    function test_RevertWhen_SettlementSignaturesReplayedOnAnotherDeployment() public {
        UsageEscrow other = _deployEscrow(IFiatToken(address(usdc)));
        UsageEscrow.Activation memory t = _terms();
        t.infraFee = 0;
        (bytes memory a, bytes memory f,) = _signAllFor(other, t);
        vm.prank(relayer);
        other.activate(t, a, f, "");
        _activate(t); // the same terms on the default escrow
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        bytes memory claimAuth = _signClaim(sellerKey, t, 30, deadline);

        vm.prank(seller);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        other.sellerClaim(t, 30, voucher);
        vm.prank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        other.sellerClaimWithAuthorization(t, 30, voucher, deadline, claimAuth);
        assertEq(usdc.balanceOf(address(other)), DEPOSIT);
    }

    // ================================================================ replay across agreements

    function test_RevertWhen_VoucherReplayedOnAnotherAgreement() public {
        UsageEscrow.Activation memory first = _terms();
        UsageEscrow.Activation memory second = _terms();
        second.salt = keccak256("second");
        _activate(first);
        _activate(second);
        bytes memory voucherForFirst = _signVoucher(buyerKey, first, 30);

        _expectClaimRevert(second, 30, voucherForFirst, _err(UsageEscrow.InvalidSignature.selector));
        _assertEscrowHolds(2 * DEPOSIT);
    }

    // ================================================================ replay across action type

    function test_RevertWhen_SellerClaimSignatureUsedAsBuyerWithdraw() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory claimAuth = _signClaim(sellerKey, t, 30, deadline);

        vm.prank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.buyerWithdrawWithAuthorization(t, deadline, claimAuth);
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_BuyerWithdrawSignatureUsedAsSellerClaim() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        bytes memory withdrawAuth = _signWithdraw(buyerKey, t, deadline);

        _expectClaimWithAuthorizationRevert(
            t, 30, voucher, deadline, withdrawAuth, _err(UsageEscrow.InvalidSignature.selector)
        );
        _assertEscrowHolds(DEPOSIT);
    }

    /// The seller's own SellerClaim signature is not its InitiateClose, though the fields match.
    function test_RevertWhen_SellerClaimSignatureUsedAsInitiateClose() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        bytes memory claimAuth = _signClaim(sellerKey, t, 30, deadline);

        vm.prank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.initiateCloseWithAuthorization(t, seller, 30, voucher, deadline, claimAuth);
        assertEq(uint256(_status(_keyOf(t))), uint256(UsageEscrow.Status.Active));
    }

    /// The buyer's InitiateClose names the buyer as party; it cannot close as the seller (which
    /// would settle at once and cut the seller's claims).
    function test_RevertWhen_InitiateCloseUsedForTheOtherParty() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory buyerClose = _signClose(buyerKey, t, buyer, 0, deadline);
        bytes memory sellerClose = _signClose(sellerKey, t, seller, 0, deadline);

        vm.startPrank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.initiateCloseWithAuthorization(t, seller, 0, "", deadline, buyerClose);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.initiateCloseWithAuthorization(t, buyer, 0, "", deadline, sellerClose);
        vm.stopPrank();
        assertEq(uint256(_status(_keyOf(t))), uint256(UsageEscrow.Status.Active));
    }

    function test_RevertWhen_VoucherUsedAsAuthorization() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory voucher = _signVoucher(buyerKey, t, 0);

        vm.startPrank(relayer);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.buyerWithdrawWithAuthorization(t, deadline, voucher);
        vm.expectRevert(_err(UsageEscrow.InvalidSignature.selector));
        escrow.initiateCloseWithAuthorization(t, buyer, 0, "", deadline, voucher);
        vm.stopPrank();
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_ActivationSignatureUsedAsVoucher() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        vm.prank(relayer);
        escrow.activate(t, a, f, p);

        _expectClaimRevert(t, 100, a, _err(UsageEscrow.InvalidSignature.selector));
        _assertEscrowHolds(DEPOSIT);
    }

    // ================================================================ high-s and bad-v signatures

    function test_RevertWhen_ActivationSignatureHasHighS() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        bytes memory twin = _highS(a);
        (bytes32 r, bytes32 s, uint8 v) = _split(twin);
        assertEq(ecrecover(_keyOf(t), v, r, s), buyer, "the twin is a valid raw ECDSA signature");

        _expectActivateRevert(t, twin, f, p, _err(UsageEscrow.InvalidSignature.selector));
    }

    function test_RevertWhen_VoucherSignatureHasHighS() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory twin = _highS(_signVoucher(buyerKey, t, 30));

        _expectClaimRevert(t, 30, twin, _err(UsageEscrow.InvalidSignature.selector));
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_AuthorizationSignatureHasHighS() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        bytes memory twin = _highS(_signClaim(sellerKey, t, 30, deadline));

        _expectClaimWithAuthorizationRevert(t, 30, voucher, deadline, twin, _err(UsageEscrow.InvalidSignature.selector));
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_SignatureHasVOf29() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        _expectActivateRevert(t, _withV(a, 29), f, p, _err(UsageEscrow.InvalidSignature.selector));
    }

    function test_RevertWhen_SignatureHasVOfZero() public {
        UsageEscrow.Activation memory t = _terms();
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        _expectActivateRevert(t, _withV(a, 0), f, p, _err(UsageEscrow.InvalidSignature.selector));
    }

    /// The same signature with v written as 0/1 instead of 27/28 is a second encoding: refused.
    function test_RevertWhen_VoucherSignatureHasVMinus27() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        (,, uint8 v) = _split(voucher);
        bytes memory bent = _withV(voucher, v - 27);

        _expectClaimRevert(t, 30, bent, _err(UsageEscrow.InvalidSignature.selector));
        _assertEscrowHolds(DEPOSIT);
    }

    /// EIP-2098 compact (64-byte) signatures are not accepted either.
    function test_RevertWhen_VoucherSignatureIsCompact() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        (bytes32 r, bytes32 s, uint8 v) = _split(_signVoucher(buyerKey, t, 30));
        bytes32 vs = bytes32(uint256(s) | (uint256(v - 27) << 255));
        bytes memory compact = abi.encodePacked(r, vs);

        _expectClaimRevert(t, 30, compact, _err(UsageEscrow.InvalidSignature.selector));
        _assertEscrowHolds(DEPOSIT);
    }

    // ================================================================ reentrancy through a callback token

    /// @dev Moves the suite onto CallbackUSDC (its hook is set by each test).
    function _useCallbackToken() internal returns (CallbackUSDC token) {
        token = CallbackUSDC(address(_useToken(new CallbackUSDC())));
    }

    /// @dev Moves the suite onto CallbackUSDC with a ReentrantParty as the seller of the default
    /// terms; the party signs with the seller's key.
    function _reentrantSeller()
        internal
        returns (CallbackUSDC token, ReentrantParty party, UsageEscrow.Activation memory t)
    {
        token = _useCallbackToken();
        party = new ReentrantParty(seller, address(token));
        token.setHook(address(party));
        t = _terms();
        t.seller = address(party);
    }

    /// @dev Moves the suite onto CallbackUSDC with a ReentrantParty holding 100 USDC as the buyer
    /// of the default terms; the party signs with the buyer's key.
    function _reentrantBuyer()
        internal
        returns (CallbackUSDC token, ReentrantParty party, UsageEscrow.Activation memory t)
    {
        token = _useCallbackToken();
        party = new ReentrantParty(buyer, address(token));
        token.mint(address(party), 100 * USDC);
        token.setHook(address(party));
        t = _terms();
        t.buyer = address(party);
    }

    /// @dev The party's hook ran once and its reentrant call met the guard.
    function _assertRefusedByTheGuard(ReentrantParty party) internal view {
        assertEq(party.attempts(), 1, "the hook ran");
        assertFalse(party.attackSucceeded());
        assertEq(party.attackResult(), _err(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector));
    }

    /// @dev The seller party was paid for `units` once, and the escrow keeps the rest.
    function _assertSellerPaidOnce(ReentrantParty party, uint256 units) internal view {
        assertEq(usdc.balanceOf(address(party)), units * PRICE, "paid once");
        _assertEscrowHolds(DEPOSIT - units * PRICE);
    }

    /// The seller is a contract that, on receiving its payout, claims again with a higher voucher:
    /// the guard refuses it and the seller is paid once.
    function test_ReentrancyOnSellerPayoutCannotClaimAgain() public {
        (CallbackUSDC token, ReentrantParty party, UsageEscrow.Activation memory t) = _reentrantSeller();
        bytes32 key = _activate(t);
        bytes memory v30 = _signVoucher(buyerKey, t, 30);
        bytes memory v60 = _signVoucher(buyerKey, t, 60);

        party.arm(address(escrow), abi.encodeCall(UsageEscrow.sellerClaim, (t, 60, v60)));
        party.execute(address(escrow), abi.encodeCall(UsageEscrow.sellerClaim, (t, 30, v30)));

        _assertRefusedByTheGuard(party);
        _assertSellerPaidOnce(party, 30);
        assertEq(escrow.escrowOf(key).claimedUnits, 30);

        // The voucher itself was good: outside the callback it pays exactly the difference.
        party.execute(address(escrow), abi.encodeCall(UsageEscrow.sellerClaim, (t, 60, v60)));
        assertEq(token.balanceOf(address(party)), 60 * PRICE);
        _assertEscrowHolds(DEPOSIT - 60 * PRICE);
    }

    /// The reentrant call goes through `batch` (which has no guard of its own): each call inside
    /// still meets the guard, fails, and the outer claim pays once.
    function test_ReentrancyThroughNonAtomicBatchIsRefused() public {
        (, ReentrantParty party, UsageEscrow.Activation memory t) = _reentrantSeller();
        _activate(t);
        bytes memory v30 = _signVoucher(buyerKey, t, 30);
        bytes[] memory inner = new bytes[](1);
        inner[0] = abi.encodeCall(UsageEscrow.sellerClaim, (t, 60, _signVoucher(buyerKey, t, 60)));

        party.arm(address(escrow), abi.encodeCall(UsageEscrow.batch, (inner, false)));
        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.BatchCallFailed(0, _err(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector));
        party.execute(address(escrow), abi.encodeCall(UsageEscrow.sellerClaim, (t, 30, v30)));

        assertTrue(party.attackSucceeded(), "the batch itself returned");
        bool[] memory ok = abi.decode(party.attackResult(), (bool[]));
        assertFalse(ok[0], "its call was refused");
        _assertSellerPaidOnce(party, 30);
    }

    function test_ReentrancyThroughAtomicBatchIsRefused() public {
        (, ReentrantParty party, UsageEscrow.Activation memory t) = _reentrantSeller();
        _activate(t);
        bytes memory v30 = _signVoucher(buyerKey, t, 30);
        bytes[] memory inner = new bytes[](1);
        inner[0] = abi.encodeCall(UsageEscrow.sellerClaim, (t, 60, _signVoucher(buyerKey, t, 60)));

        party.arm(address(escrow), abi.encodeCall(UsageEscrow.batch, (inner, true)));
        party.execute(address(escrow), abi.encodeCall(UsageEscrow.sellerClaim, (t, 30, v30)));

        _assertRefusedByTheGuard(party);
        _assertSellerPaidOnce(party, 30);
    }

    /// A relayer's sellerClaimBatch pays a seller contract that, on receiving the payout, submits
    /// the same batch again: the guard refuses it and every claim is paid once.
    function test_ReentrancyThroughSellerClaimBatchIsRefused() public {
        (, ReentrantParty party, UsageEscrow.Activation memory t) = _reentrantSeller();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        UsageEscrow.SponsoredClaim[] memory claims = new UsageEscrow.SponsoredClaim[](1);
        // The party's SellerClaim authorization is its signer's key, checked through ERC-1271.
        claims[0] = UsageEscrow.SponsoredClaim(
            t, 30, _signVoucher(buyerKey, t, 30), deadline, _signClaim(sellerKey, t, 30, deadline)
        );
        UsageEscrow.SponsoredClaim[] memory more = new UsageEscrow.SponsoredClaim[](1);
        more[0] = UsageEscrow.SponsoredClaim(
            t, 60, _signVoucher(buyerKey, t, 60), deadline, _signClaim(sellerKey, t, 60, deadline)
        );

        party.arm(address(escrow), abi.encodeCall(UsageEscrow.sellerClaimBatch, (more)));
        vm.prank(relayer);
        escrow.sellerClaimBatch(claims);

        _assertRefusedByTheGuard(party);
        _assertSellerPaidOnce(party, 30);
    }

    /// The buyer is a contract (ERC-1271) that, on receiving its refund, withdraws again.
    function test_ReentrancyOnBuyerRefundCannotWithdrawAgain() public {
        (CallbackUSDC token, ReentrantParty party, UsageEscrow.Activation memory t) = _reentrantBuyer();
        bytes32 key = _activate(t); // every buyer signature goes through the party's ERC-1271
        _claim(t, 30);
        party.execute(address(escrow), abi.encodeCall(UsageEscrow.initiateClose, (t, 0, "")));
        vm.warp(block.timestamp + t.closeWindow);

        party.arm(address(escrow), abi.encodeCall(UsageEscrow.buyerWithdraw, (t)));
        party.execute(address(escrow), abi.encodeCall(UsageEscrow.buyerWithdraw, (t)));

        _assertRefusedByTheGuard(party);
        assertEq(token.balanceOf(address(party)), 100 * USDC - FEE - 30 * PRICE, "refunded once");
        _assertEscrowHolds(0);
        assertTrue(escrow.escrowOf(key).buyerWithdrawn);
    }

    /// The buyer's contract tries to close from inside its own funding transfer: the agreement is
    /// already active in storage, but the guard refuses the call, and activation completes.
    function test_ReentrancyDuringFundingIsRefused() public {
        (CallbackUSDC token, ReentrantParty party, UsageEscrow.Activation memory t) = _reentrantBuyer();
        t.infraFee = 0;

        party.arm(address(escrow), abi.encodeCall(UsageEscrow.initiateClose, (t, 0, "")));
        bytes32 key = _activate(t);

        _assertRefusedByTheGuard(party);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Active));
        assertEq(token.balanceOf(address(escrow)), DEPOSIT);
    }

    // ================================================================ fee-on-transfer token

    function test_RevertWhen_TokenTakesAFeeOnTransfer() public {
        _useToken(new FeeOnTransferUSDC());
        UsageEscrow.Activation memory t = _terms();
        t.infraFee = 0;
        (bytes memory a, bytes memory f,) = _signAll(t);
        _expectActivateRevert(
            t, a, f, "", abi.encodeWithSelector(UsageEscrow.DepositMismatch.selector, DEPOSIT, DEPOSIT - DEPOSIT / 100)
        );
    }

    // ================================================================ dust and rounding

    function test_DustOneUnitAtOneBaseUnit() public {
        UsageEscrow.Activation memory t = _terms();
        t.unitPrice = 1;
        t.quantity = 1;
        t.infraFee = 0;
        bytes32 key = _activate(t);
        _assertEscrowHolds(1);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _claim(t, 1);

        assertEq(usdc.balanceOf(seller), sellerBefore + 1);
        _assertEscrowHolds(0);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Settled));
    }

    function test_DustSplitIsExactAndSumsToTheDeposit() public {
        UsageEscrow.Activation memory t = _terms();
        t.unitPrice = 1;
        t.quantity = 3;
        t.infraFee = 0;
        uint256 buyerStart = usdc.balanceOf(buyer);
        uint256 sellerStart = usdc.balanceOf(seller);
        _activate(t);

        _claim(t, 1);
        _closeAsBuyer(t);
        vm.warp(block.timestamp + t.closeWindow);
        _withdrawAsBuyer(t);

        assertEq(usdc.balanceOf(seller) - sellerStart, 1);
        assertEq(buyerStart - usdc.balanceOf(buyer), 1, "the buyer paid exactly one unit");
        _assertEscrowHolds(0);
    }

    function test_MaxTermsSettleWithoutOverflow() public {
        UsageEscrow.Activation memory t = _terms();
        t.unitPrice = type(uint128).max;
        t.quantity = type(uint64).max;
        t.infraFee = 0;
        uint256 deposit = t.unitPrice * t.quantity;
        usdc.mint(buyer, deposit);
        uint256 sellerStart = usdc.balanceOf(seller);
        uint256 buyerStart = usdc.balanceOf(buyer);
        _activate(t);

        uint256 half = t.quantity / 2;
        _claim(t, half);
        vm.prank(seller);
        escrow.initiateClose(t, half, "");
        _withdrawAsBuyer(t);

        assertEq(usdc.balanceOf(seller) - sellerStart, half * t.unitPrice);
        assertEq(buyerStart - usdc.balanceOf(buyer), half * t.unitPrice);
        _assertEscrowHolds(0);
    }

    /// Whatever the price, quantity and usage, each side gets a whole number of units times the
    /// price, and the two sum to the deposit exactly.
    function testFuzz_SplitSumsToTheDeposit(uint256 unitPrice, uint256 quantity, uint256 claimed) public {
        UsageEscrow.Activation memory t = _terms();
        t.unitPrice = bound(unitPrice, 1, type(uint128).max);
        t.quantity = bound(quantity, 1, type(uint64).max);
        t.infraFee = 0;
        claimed = bound(claimed, 0, t.quantity);
        uint256 deposit = t.unitPrice * t.quantity;
        usdc.mint(buyer, deposit);
        uint256 sellerStart = usdc.balanceOf(seller);
        uint256 buyerStart = usdc.balanceOf(buyer);
        _activate(t);

        if (claimed != 0) _claim(t, claimed);
        if (claimed != t.quantity) {
            vm.prank(seller);
            escrow.initiateClose(t, claimed, "");
            _withdrawAsBuyer(t);
        }

        uint256 sellerGot = usdc.balanceOf(seller) - sellerStart;
        uint256 buyerPaid = buyerStart - usdc.balanceOf(buyer);
        assertEq(sellerGot, claimed * t.unitPrice);
        assertEq(buyerPaid, sellerGot, "the buyer is out exactly what the seller received");
        _assertEscrowHolds(0);
    }

    // ================================================================ deadlines at == and ±1 s

    function test_DeadlineActivateOneSecondBeforeActivateBy() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activateAt(t, t.activateBy - 1, "");
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Active));
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_DeadlineActivateAtActivateBy() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAt(t, t.activateBy, abi.encodeWithSelector(UsageEscrow.ActivationExpired.selector, t.activateBy));
        _assertEscrowHolds(0);
    }

    function test_RevertWhen_DeadlineActivateOneSecondAfterActivateBy() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAt(t, t.activateBy + 1, abi.encodeWithSelector(UsageEscrow.ActivationExpired.selector, t.activateBy));
        _assertEscrowHolds(0);
    }

    function test_DeadlineAuthorizationOneSecondBefore() public {
        uint256 sellerBefore = usdc.balanceOf(seller);
        _sponsoredClaimAt(CLAIM_DEADLINE - 1, "");
        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
    }

    function test_DeadlineAuthorizationAtDeadline() public {
        uint256 sellerBefore = usdc.balanceOf(seller);
        _sponsoredClaimAt(CLAIM_DEADLINE, "");
        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
    }

    function test_RevertWhen_DeadlineAuthorizationOneSecondAfter() public {
        _sponsoredClaimAt(
            CLAIM_DEADLINE + 1, abi.encodeWithSelector(UsageEscrow.AuthorizationExpired.selector, CLAIM_DEADLINE)
        );
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_DeadlineCloseWithdrawOneSecondBeforeClosesAt() public {
        UsageEscrow.Activation memory t = _terms();
        uint256 closesAt = _activateAndCloseAsBuyer(t);
        vm.warp(closesAt - 1);

        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.WithdrawNotOpen.selector, closesAt));
        escrow.buyerWithdraw(t);
        _assertEscrowHolds(DEPOSIT);
    }

    function test_DeadlineCloseWithdrawAtClosesAt() public {
        UsageEscrow.Activation memory t = _terms();
        vm.warp(_activateAndCloseAsBuyer(t));
        _assertWithdrawRefundsDeposit(t);
    }

    function test_DeadlineCloseWithdrawOneSecondAfterClosesAt() public {
        UsageEscrow.Activation memory t = _terms();
        vm.warp(_activateAndCloseAsBuyer(t) + 1);
        _assertWithdrawRefundsDeposit(t);
    }

    function test_RevertWhen_DeadlineExpiryWithdrawOneSecondBefore() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        vm.warp(t.expiry + t.closeWindow - 1);

        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.WithdrawNotOpen.selector, t.expiry + t.closeWindow));
        escrow.buyerWithdraw(t);
        _assertEscrowHolds(DEPOSIT);
    }

    function test_DeadlineExpiryWithdrawAtExpiryPlusCloseWindow() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activateAndWarpToWithdraw(t);
        _assertWithdrawRefundsDeposit(t);
        _assertEscrowHolds(0);
        assertEq(uint256(_status(key)), uint256(UsageEscrow.Status.Settled));
    }

    function test_DeadlineExpiryWithdrawOneSecondAfter() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        vm.warp(t.expiry + t.closeWindow + 1);
        _assertWithdrawRefundsDeposit(t);
    }

    // ================================================================ double claim and double withdraw

    function test_RevertWhen_SameVoucherClaimedTwice() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 30);
        vm.prank(seller);
        escrow.sellerClaim(t, 30, voucher);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _expectClaimRevert(t, 30, voucher, abi.encodeWithSelector(UsageEscrow.NothingToClaim.selector, 30, 30));
        assertEq(usdc.balanceOf(seller), sellerBefore);
        _assertEscrowHolds(70 * PRICE);
    }

    /// One voucher claimed directly and then through the sponsored path pays once.
    function test_RevertWhen_VoucherClaimedThroughBothPaths() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _claim(t, 30);
        uint256 sellerBefore = usdc.balanceOf(seller);

        // vm.sign is deterministic: the sponsored call carries the very voucher claimed above.
        _claimWithAuthorization(
            t, 30, block.timestamp + 10 minutes, abi.encodeWithSelector(UsageEscrow.NothingToClaim.selector, 30, 30)
        );
        assertEq(usdc.balanceOf(seller), sellerBefore);
    }

    function test_DoubleClaimInOneBatchPaysOnce() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes[] memory calls = new bytes[](2);
        calls[0] = abi.encodeCall(
            UsageEscrow.sellerClaimWithAuthorization,
            (t, 30, _signVoucher(buyerKey, t, 30), deadline, _signClaim(sellerKey, t, 30, deadline))
        );
        calls[1] = calls[0];
        uint256 sellerBefore = usdc.balanceOf(seller);

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.BatchCallFailed(1, abi.encodeWithSelector(UsageEscrow.NothingToClaim.selector, 30, 30));
        vm.prank(relayer);
        escrow.batch(calls, false);

        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
        _assertEscrowHolds(70 * PRICE);
    }

    function test_RevertWhen_BuyerWithdrawsTwice() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        _withdrawAsBuyer(t);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(buyer);
        vm.expectRevert(_err(UsageEscrow.AlreadyWithdrawn.selector));
        escrow.buyerWithdraw(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore);
    }

    function test_RevertWhen_BuyerWithdrawsThroughBothPaths() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        _withdrawAsBuyer(t);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        _withdrawWithAuthorization(t, block.timestamp + 10 minutes, _err(UsageEscrow.AlreadyWithdrawn.selector));
        assertEq(usdc.balanceOf(buyer), buyerBefore);
    }

    /// After a full claim the buyer has nothing left to withdraw.
    function test_RevertWhen_BuyerWithdrawsAfterFullClaim() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _claim(t, 100);
        vm.warp(t.expiry + t.closeWindow);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        vm.prank(buyer);
        vm.expectRevert(_err(UsageEscrow.AlreadyWithdrawn.selector));
        escrow.buyerWithdraw(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore);
        _assertEscrowHolds(0);
    }

    /// A seller who closed with a final voucher cannot claim more afterwards.
    function test_RevertWhen_SellerClaimsAfterItsFinalClose() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory v30 = _signVoucher(buyerKey, t, 30);
        bytes memory v60 = _signVoucher(buyerKey, t, 60);
        vm.prank(seller);
        escrow.initiateClose(t, 30, v30);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _expectClaimRevert(
            t, 60, v60, abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, UsageEscrow.Status.Settled)
        );
        assertEq(usdc.balanceOf(seller), sellerBefore);
        _assertEscrowHolds(70 * PRICE, "the buyer's part is intact");
    }

    // ================================================================ claim above quantity

    function test_RevertWhen_ClaimAboveQuantity() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 101);

        _expectClaimRevert(t, 101, voucher, abi.encodeWithSelector(UsageEscrow.UnitsExceedQuantity.selector, 101, 100));
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_ClaimAboveQuantityWithAuthorization() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _claimWithAuthorization(
            t,
            type(uint64).max,
            block.timestamp + 10 minutes,
            abi.encodeWithSelector(UsageEscrow.UnitsExceedQuantity.selector, uint256(type(uint64).max), 100)
        );
        _assertEscrowHolds(DEPOSIT);
    }

    function test_RevertWhen_FinalCloseAboveQuantity() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        bytes memory voucher = _signVoucher(buyerKey, t, 101);

        vm.prank(seller);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.UnitsExceedQuantity.selector, 101, 100));
        escrow.initiateClose(t, 101, voucher);
        _assertEscrowHolds(DEPOSIT);
    }

    // ================================================================ claim after the buyer withdrew

    function test_RevertWhen_SellerClaimsAfterBuyerWithdrew() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        _claim(t, 30);
        _closeAsBuyer(t);
        vm.warp(block.timestamp + t.closeWindow);
        _withdrawAsBuyer(t);
        bytes memory v60 = _signVoucher(buyerKey, t, 60);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _expectClaimRevert(
            t, 60, v60, abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, UsageEscrow.Status.Settled)
        );
        assertEq(usdc.balanceOf(seller), sellerBefore);
        _assertEscrowHolds(0);
    }

    function test_RevertWhen_SellerClosesAfterBuyerWithdrew() public {
        UsageEscrow.Activation memory t = _terms();
        _activateAndWarpToWithdraw(t);
        _withdrawAsBuyer(t);
        bytes memory v60 = _signVoucher(buyerKey, t, 60);

        vm.prank(seller);
        vm.expectRevert(abi.encodeWithSelector(UsageEscrow.InvalidStatus.selector, UsageEscrow.Status.Settled));
        escrow.initiateClose(t, 60, v60);
        _assertEscrowHolds(0);
    }

    // ================================================================ blacklisted payout address

    function test_BlacklistedSellerDoesNotBlockBuyerWithdraw() public {
        UsageEscrow.Activation memory t = _terms();
        bytes32 key = _activate(t);
        _claim(t, 30);
        usdc.blacklist(seller);
        bytes memory v60 = _signVoucher(buyerKey, t, 60);

        _expectClaimRevert(t, 60, v60, abi.encodeWithSelector(MockUSDC.Blacklisted.selector, seller));
        assertEq(escrow.escrowOf(key).claimedUnits, 30, "the failed claim changed nothing");

        _closeAsBuyer(t);
        vm.warp(block.timestamp + t.closeWindow);
        uint256 buyerBefore = usdc.balanceOf(buyer);
        _withdrawAsBuyer(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore + 70 * PRICE);
        _assertEscrowHolds(0);
    }

    function test_BlacklistedBuyerDoesNotBlockSellerClaim() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        usdc.blacklist(buyer);
        uint256 sellerBefore = usdc.balanceOf(seller);

        _claim(t, 60);
        assertEq(usdc.balanceOf(seller), sellerBefore + 60 * PRICE);

        vm.warp(t.expiry + t.closeWindow);
        vm.prank(buyer);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, buyer));
        escrow.buyerWithdraw(t);
        _assertEscrowHolds(40 * PRICE, "the buyer's part stays in escrow");

        // Once the token lifts the blacklist the buyer's part is still there to withdraw.
        usdc.unBlacklist(buyer);
        uint256 buyerBefore = usdc.balanceOf(buyer);
        _withdrawAsBuyer(t);
        assertEq(usdc.balanceOf(buyer), buyerBefore + 40 * PRICE);
        _assertEscrowHolds(0);
    }

    /// A relayer batching several sellers' claims isolates a blacklisted seller with a non-atomic
    /// batch: that claim fails, the others are paid. (sellerClaimBatch skips such a claim itself:
    /// see UsageEscrowBatchIsolation.t.sol.)
    function test_BlacklistedSellerDoesNotBlockOtherSellersInANonAtomicBatch() public {
        (address otherSeller, uint256 otherSellerKey) = makeAddrAndKey("other seller");
        UsageEscrow.Activation memory blocked = _terms();
        UsageEscrow.Activation memory fine = _terms();
        fine.seller = otherSeller;
        _activate(blocked);
        _activate(fine);
        usdc.blacklist(seller);
        uint256 deadline = block.timestamp + 10 minutes;
        bytes[] memory calls = new bytes[](2);
        calls[0] = abi.encodeCall(
            UsageEscrow.sellerClaimWithAuthorization,
            (blocked, 30, _signVoucher(buyerKey, blocked, 30), deadline, _signClaim(sellerKey, blocked, 30, deadline))
        );
        calls[1] = abi.encodeCall(
            UsageEscrow.sellerClaimWithAuthorization,
            (fine, 30, _signVoucher(buyerKey, fine, 30), deadline, _signClaim(otherSellerKey, fine, 30, deadline))
        );

        vm.expectEmit(true, true, true, true, address(escrow));
        emit UsageEscrow.BatchCallFailed(0, abi.encodeWithSelector(MockUSDC.Blacklisted.selector, seller));
        vm.prank(relayer);
        escrow.batch(calls, false);

        assertEq(usdc.balanceOf(otherSeller), 30 * PRICE);
        _assertEscrowHolds(2 * DEPOSIT - 30 * PRICE);
        assertEq(escrow.escrowOf(_keyOf(blocked)).claimedUnits, 0, "the failed claim changed nothing");
    }

    // ================================================================ sanctions screening

    function test_RevertWhen_BuyerIsSanctioned() public {
        _sanction(buyer);
        _expectActivateRevert(_terms(), abi.encodeWithSelector(UsageEscrow.SanctionedAddress.selector, buyer));
    }

    function test_RevertWhen_SellerIsSanctioned() public {
        _sanction(seller);
        _expectActivateRevert(_terms(), abi.encodeWithSelector(UsageEscrow.SanctionedAddress.selector, seller));
    }

    function test_RevertWhen_OracleReverts() public {
        oracle.setReverting(true);
        _expectActivateRevert(_terms(), _err(UsageEscrow.SanctionsOracleFailed.selector));
    }

    function test_RevertWhen_OracleHasNoCode() public {
        _useOracle(address(0xDEAD));
        _expectActivateRevert(_terms(), _err(UsageEscrow.SanctionsOracleFailed.selector));
    }

    function test_RevertWhen_OracleAnswersNothing() public {
        _useOracle(address(new SilentOracle()));
        _expectActivateRevert(_terms(), _err(UsageEscrow.SanctionsOracleFailed.selector));
    }

    /// A malformed (non-boolean) answer counts as listed: screening fails closed.
    function test_RevertWhen_OracleAnswersGarbage() public {
        _useOracle(address(new GarbageOracle()));
        _expectActivateRevert(_terms(), abi.encodeWithSelector(UsageEscrow.SanctionedAddress.selector, buyer));
    }

    /// Payouts are not gated on the oracle (docs/contract.md): funds already in escrow cannot be
    /// frozen by an oracle that breaks after activation.
    function test_PayoutsDoNotDependOnTheOracleAfterActivation() public {
        UsageEscrow.Activation memory t = _terms();
        _activate(t);
        oracle.setReverting(true);
        uint256 sellerBefore = usdc.balanceOf(seller);
        uint256 buyerBefore = usdc.balanceOf(buyer);

        _claim(t, 30);
        vm.warp(t.expiry + t.closeWindow);
        _withdrawAsBuyer(t);

        assertEq(usdc.balanceOf(seller), sellerBefore + 30 * PRICE);
        assertEq(usdc.balanceOf(buyer), buyerBefore + 70 * PRICE);
        _assertEscrowHolds(0);
    }
}
