// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";
import {IFiatToken} from "../src/interfaces/IFiatToken.sol";
import {MockUSDC} from "../src/mocks/MockUSDC.sol";
import {MockUSDCAuthorizations} from "../src/mocks/MockUSDCAuthorizations.sol";
import {FeeOnTransferUSDC} from "../src/mocks/FeeOnTransferUSDC.sol";

/// @notice The infra fee's authorization (contract v3): the buyer's USDC ReceiveWithAuthorization
/// to the escrow for exactly the fee, valid until `activateBy`, with the unordered nonce
/// `infraFeeNonce(key)`. Pending activations of one buyer and anything else the buyer signs do
/// not interfere with it, nobody can spend it before the escrow does, and an empty signature
/// takes the fee from an allowance instead.
contract UsageEscrowFeeAuthorizationTest is EscrowFixture {
    uint256 internal constant DEPOSIT = 10_000_000;
    uint256 internal constant FEE = 100_000;

    address internal attacker = address(0xA77AC4);
    address internal elsewhere = address(0xE15E);

    /// @dev The default terms told apart by `salt`, with their three buyer signatures.
    struct Pending {
        UsageEscrow.Activation terms;
        bytes activation;
        bytes funding;
        bytes fee;
    }

    function _pending(string memory salt) internal view returns (Pending memory p) {
        p.terms = _terms();
        p.terms.salt = keccak256(bytes(salt));
        (p.activation, p.funding, p.fee) = _signAll(p.terms);
    }

    function _submit(Pending memory p) internal returns (bytes32 key) {
        vm.prank(relayer);
        key = escrow.activate(p.terms, p.activation, p.funding, p.fee);
    }

    function _expectSubmitReverts(Pending memory p, bytes memory reason) internal {
        _expectActivateRevert(p.terms, p.activation, p.funding, p.fee, reason);
    }

    // ---------------------------------------------------------------- the nonce

    function test_InfraFeeNonceIsTheHashOfKeyAndTag() public view {
        bytes32 key = _keyOf(_terms());
        assertEq(escrow.infraFeeNonce(key), keccak256(abi.encodePacked(key, "infra-fee")));
        assertTrue(escrow.infraFeeNonce(key) != key, "never the funding nonce");
    }

    function testFuzz_InfraFeeNonceIsTheHashOfKeyAndTag(bytes32 key) public view {
        assertEq(escrow.infraFeeNonce(key), keccak256(abi.encodePacked(key, "infra-fee")));
    }

    // ---------------------------------------------------------------- the fee is taken exactly

    function test_ActivationTakesExactlyTheFeeIntoTheEscrow() public {
        Pending memory p = _pending("a");
        bytes32 key = _keyOf(p.terms);
        bytes32 feeNonce = escrow.infraFeeNonce(key);
        uint256 buyerBefore = usdc.balanceOf(buyer);
        uint256 recipientBefore = usdc.balanceOf(feeRecipient);

        vm.expectEmit(true, true, true, true, address(usdc));
        emit MockUSDCAuthorizations.AuthorizationUsed(buyer, feeNonce);
        _submit(p);

        assertEq(buyerBefore - usdc.balanceOf(buyer), DEPOSIT + FEE, "deposit and fee, nothing more");
        assertEq(usdc.balanceOf(address(escrow)), DEPOSIT + FEE);
        assertEq(escrow.accruedFees(), FEE);
        assertEq(usdc.balanceOf(feeRecipient), recipientBefore, "accrued, not paid out");
        assertTrue(usdc.authorizationState(buyer, feeNonce), "fee nonce used");
        assertEq(usdc.nonces(buyer), 0, "no EIP-2612 nonce involved");
    }

    // ---------------------------------------------------------------- pending activations

    /// Two activations of one buyer, both signed before either is submitted, go through in the
    /// order signed. (With v2's EIP-2612 permits the second one's nonce was taken by the first.)
    function test_TwoPendingActivationsOfOneBuyerInSigningOrder() public {
        Pending memory first = _pending("first");
        Pending memory second = _pending("second");
        _submit(first);
        _submit(second);
        assertEq(escrow.accruedFees(), 2 * FEE);
        assertEq(usdc.balanceOf(address(escrow)), 2 * (DEPOSIT + FEE));
    }

    /// ... and in the other order.
    function test_TwoPendingActivationsOfOneBuyerInReverseOrder() public {
        Pending memory first = _pending("first");
        Pending memory second = _pending("second");
        _submit(second);
        _submit(first);
        assertEq(escrow.accruedFees(), 2 * FEE);
        assertEq(usdc.balanceOf(address(escrow)), 2 * (DEPOSIT + FEE));
    }

    /// Up to eight activations of one buyer, all signed first, submitted in any order, with EIP-2612
    /// permits elsewhere used in between: every one goes through and takes exactly its fee.
    function testFuzz_PendingActivationsOfOneBuyerInAnyOrder(uint256 seed, uint256 countSeed) public {
        uint256 n = bound(countSeed, 2, 8);
        Pending[] memory pending = new Pending[](n);
        uint256[] memory order = new uint256[](n);
        uint256 fees;
        for (uint256 i; i < n; ++i) {
            pending[i].terms = _terms();
            pending[i].terms.salt = bytes32(i);
            pending[i].terms.infraFee = FEE + i;
            (pending[i].activation, pending[i].funding, pending[i].fee) = _signAll(pending[i].terms);
            order[i] = i;
            fees += FEE + i;
        }
        for (uint256 i = n - 1; i > 0; --i) {
            uint256 j = uint256(keccak256(abi.encode(seed, i))) % (i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        uint256 buyerBefore = usdc.balanceOf(buyer);

        for (uint256 k; k < n; ++k) {
            if ((seed >> k) & 1 == 1) {
                bytes memory permit = _signPermit(buyerKey, buyer, elsewhere, k + 1, block.timestamp);
                usdc.permit(buyer, elsewhere, k + 1, block.timestamp, permit);
            }
            _submit(pending[order[k]]);
        }

        assertEq(escrow.accruedFees(), fees, "every fee taken once");
        assertEq(buyerBefore - usdc.balanceOf(buyer), n * DEPOSIT + fees);
        assertEq(usdc.balanceOf(address(escrow)), n * DEPOSIT + fees);
    }

    // ---------------------------------------------------------------- other signatures of the buyer

    /// The buyer signs an EIP-2612 permit elsewhere and it is used: the pending fee authorization
    /// does not care about the permit nonce.
    function test_PermitToAnotherSpenderDoesNotInvalidateAPendingFeeAuthorization() public {
        Pending memory p = _pending("a");
        bytes memory permit = _signPermit(buyerKey, buyer, elsewhere, 5 * USDC, p.terms.activateBy);
        usdc.permit(buyer, elsewhere, 5 * USDC, p.terms.activateBy, permit);
        assertEq(usdc.nonces(buyer), 1, "the permit nonce moved");

        _submit(p);
        assertEq(escrow.accruedFees(), FEE);
    }

    /// An EIP-2612 permit to the escrow itself does not disturb the authorization either, nor is
    /// the allowance used when the authorization is given.
    function test_PermitToTheEscrowDoesNotInvalidateAPendingFeeAuthorization() public {
        Pending memory p = _pending("a");
        bytes memory permit = _signPermit(buyerKey, buyer, address(escrow), FEE, p.terms.activateBy);
        usdc.permit(buyer, address(escrow), FEE, p.terms.activateBy, permit);

        _submit(p);
        assertEq(escrow.accruedFees(), FEE);
        assertEq(usdc.allowance(buyer, address(escrow)), FEE, "the authorization paid, not the allowance");
    }

    /// Other EIP-3009 authorizations of the buyer (a transfer elsewhere, a receive by another
    /// payee, each with its own nonce) are used first: the pending fee authorization still works.
    function test_OtherAuthorizationsOfTheBuyerDoNotInvalidateAPendingFeeAuthorization() public {
        Pending memory p = _pending("a");
        bytes32 transferNonce = keccak256("a transfer elsewhere");
        bytes memory transfer = _signTokenAuthorization(
            buyerKey, TRANSFER_WITH_AUTHORIZATION_TYPEHASH, buyer, elsewhere, FEE, p.terms.activateBy, transferNonce
        );
        bytes32 receiveNonce = keccak256("a receive by someone else");
        bytes memory receive_ = _signTokenAuthorization(
            buyerKey, RECEIVE_WITH_AUTHORIZATION_TYPEHASH, buyer, elsewhere, FEE, p.terms.activateBy, receiveNonce
        );
        usdc.transferWithAuthorization(buyer, elsewhere, FEE, 0, p.terms.activateBy, transferNonce, transfer);
        vm.prank(elsewhere);
        usdc.receiveWithAuthorization(buyer, elsewhere, FEE, 0, p.terms.activateBy, receiveNonce, receive_);
        assertEq(usdc.balanceOf(elsewhere), 2 * FEE);

        _submit(p);
        assertEq(escrow.accruedFees(), FEE);
    }

    /// The buyer may still withdraw its consent: a cancelled fee authorization fails the
    /// activation in the token.
    function test_RevertWhen_FeeAuthorizationWasCancelled() public {
        Pending memory p = _pending("a");
        bytes32 feeNonce = escrow.infraFeeNonce(_keyOf(p.terms));
        bytes32 structHash = keccak256(abi.encode(usdc.CANCEL_AUTHORIZATION_TYPEHASH(), buyer, feeNonce));
        usdc.cancelAuthorization(buyer, feeNonce, _sign(buyerKey, _typedDigest(usdc.DOMAIN_SEPARATOR(), structHash)));

        _expectSubmitReverts(p, _err(MockUSDCAuthorizations.AuthorizationAlreadyUsed.selector));
    }

    // ---------------------------------------------------------------- front-running

    /// An attacker front-runs both authorizations of a pending activation on the token, in every
    /// form: each attempt fails, no nonce is used, and the activation then goes through.
    function test_FrontRunOfFeeAndFundingAuthorizationsFailsAndActivationSucceeds() public {
        Pending memory p = _pending("a");
        bytes32 key = _keyOf(p.terms);
        _frontRunEverywhere(p.fee, FEE, p.terms.activateBy, escrow.infraFeeNonce(key));
        _frontRunEverywhere(p.funding, DEPOSIT, p.terms.activateBy, key);
        assertFalse(usdc.authorizationState(buyer, key), "funding nonce unused");
        assertFalse(usdc.authorizationState(buyer, escrow.infraFeeNonce(key)), "fee nonce unused");
        uint256 buyerBefore = usdc.balanceOf(buyer);

        _submit(p);

        assertEq(buyerBefore - usdc.balanceOf(buyer), DEPOSIT + FEE);
        assertEq(escrow.accruedFees(), FEE);
        assertEq(usdc.balanceOf(attacker), 0);
    }

    /// @dev Submits `sig` as a receive (to the escrow and to the attacker) and as a transfer (to
    /// both), each refused.
    function _frontRunEverywhere(bytes memory sig, uint256 value, uint256 validBefore, bytes32 nonce) internal {
        vm.startPrank(attacker);
        vm.expectRevert(_err(MockUSDCAuthorizations.CallerMustBePayee.selector));
        usdc.receiveWithAuthorization(buyer, address(escrow), value, 0, validBefore, nonce, sig);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        usdc.receiveWithAuthorization(buyer, attacker, value, 0, validBefore, nonce, sig);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        usdc.transferWithAuthorization(buyer, address(escrow), value, 0, validBefore, nonce, sig);
        vm.expectRevert(_err(MockUSDCAuthorizations.InvalidSignature.selector));
        usdc.transferWithAuthorization(buyer, attacker, value, 0, validBefore, nonce, sig);
        vm.stopPrank();
    }

    /// The fee authorization of one agreement cannot pay another's fee (its nonce is bound to the
    /// key), even with the same fee and a valid activation and funding for the other.
    function test_RevertWhen_FeeAuthorizationUsedForOtherTerms() public {
        Pending memory a = _pending("a");
        Pending memory b = _pending("b");
        b.fee = a.fee;
        _expectSubmitReverts(b, _err(MockUSDCAuthorizations.InvalidSignature.selector));
    }

    // ---------------------------------------------------------------- wrong signatures

    function test_RevertWhen_FeeAuthorizationSignedBySeller() public {
        Pending memory p = _pending("a");
        p.fee = _signFeeAuthorization(sellerKey, p.terms);
        _expectSubmitReverts(p, _err(MockUSDCAuthorizations.InvalidSignature.selector));
    }

    /// A fee authorization for another amount (one base unit more or less) does not verify for
    /// the terms' fee.
    function test_RevertWhen_FeeAuthorizationValueAltered() public {
        Pending memory p = _pending("a");
        bytes32 feeNonce = escrow.infraFeeNonce(_keyOf(p.terms));
        for (uint256 i; i < 2; ++i) {
            uint256 value = i == 0 ? FEE - 1 : FEE + 1;
            p.fee = _signTokenAuthorization(
                buyerKey,
                RECEIVE_WITH_AUTHORIZATION_TYPEHASH,
                buyer,
                address(escrow),
                value,
                p.terms.activateBy,
                feeNonce
            );
            _expectSubmitReverts(p, _err(MockUSDCAuthorizations.InvalidSignature.selector));
        }
    }

    /// Signed with the funding nonce (the key), another validity, or as a transfer: refused.
    function test_RevertWhen_FeeAuthorizationHasOtherFields() public {
        Pending memory p = _pending("a");
        bytes32 key = _keyOf(p.terms);
        bytes32 feeNonce = escrow.infraFeeNonce(key);
        bytes[3] memory wrong = [
            _signTokenAuthorization(
                buyerKey, RECEIVE_WITH_AUTHORIZATION_TYPEHASH, buyer, address(escrow), FEE, p.terms.activateBy, key
            ),
            _signTokenAuthorization(
                buyerKey, RECEIVE_WITH_AUTHORIZATION_TYPEHASH, buyer, address(escrow), FEE, p.terms.expiry, feeNonce
            ),
            _signTokenAuthorization(
                buyerKey,
                TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
                buyer,
                address(escrow),
                FEE,
                p.terms.activateBy,
                feeNonce
            )
        ];
        for (uint256 i; i < wrong.length; ++i) {
            p.fee = wrong[i];
            _expectSubmitReverts(p, _err(MockUSDCAuthorizations.InvalidSignature.selector));
        }
    }

    // ---------------------------------------------------------------- the allowance path

    function test_EmptyFeeSignatureTakesTheFeeFromAnAllowance() public {
        Pending memory p = _pending("a");
        p.fee = "";
        vm.prank(buyer);
        usdc.approve(address(escrow), FEE);

        bytes32 key = _submit(p);

        assertEq(escrow.accruedFees(), FEE);
        assertEq(usdc.allowance(buyer, address(escrow)), 0);
        assertFalse(usdc.authorizationState(buyer, escrow.infraFeeNonce(key)), "no authorization used");
    }

    /// An allowance given by an EIP-2612 permit submitted beforehand works the same way.
    function test_EmptyFeeSignatureTakesTheFeeFromAPermittedAllowance() public {
        Pending memory p = _pending("a");
        p.fee = "";
        bytes memory permit = _signPermit(buyerKey, buyer, address(escrow), FEE, p.terms.activateBy);
        usdc.permit(buyer, address(escrow), FEE, p.terms.activateBy, permit);

        _submit(p);
        assertEq(escrow.accruedFees(), FEE);
    }

    function test_RevertWhen_AllowanceIsOneBelowTheFee() public {
        Pending memory p = _pending("a");
        p.fee = "";
        vm.prank(buyer);
        usdc.approve(address(escrow), FEE - 1);
        _expectSubmitReverts(p, _err(UsageEscrow.InfraFeeNotAuthorized.selector));
        assertEq(usdc.allowance(buyer, address(escrow)), FEE - 1, "allowance untouched");
    }

    // ---------------------------------------------------------------- deposit and fee checked together

    /// On a token that keeps a cut of every transfer, the deposit and the fee received are
    /// checked together.
    function test_RevertWhen_TokenTakesACutOfDepositAndFee() public {
        FeeOnTransferUSDC token = FeeOnTransferUSDC(address(_behindProxy(new FeeOnTransferUSDC())));
        usdc = token;
        escrow = _deployEscrow(IFiatToken(address(token)));
        token.mint(buyer, 1_000_000 * USDC);
        Pending memory p = _pending("a");
        uint256 received = DEPOSIT - DEPOSIT / 100 + FEE - FEE / 100;
        _expectSubmitReverts(p, abi.encodeWithSelector(UsageEscrow.DepositMismatch.selector, DEPOSIT + FEE, received));
    }
}
