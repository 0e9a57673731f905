// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {UsdcDeployer} from "./utils/UsdcDeployer.sol";
import {EscrowFixture} from "./utils/EscrowFixture.sol";
import {MockUSDC} from "../src/mocks/MockUSDC.sol";
import {MockUSDCAuthorizations} from "../src/mocks/MockUSDCAuthorizations.sol";
import {MockUSDCRoles} from "../src/mocks/MockUSDCRoles.sol";
import {MockSmartWallet} from "../src/mocks/MockSmartWallet.sol";
import {MockSanctionsOracle} from "../src/mocks/MockSanctionsOracle.sol";
import {UsageEscrow} from "../src/UsageEscrow.sol";

/// @notice An ERC-1271 wallet that accepts any signature, but only when the token itself asks.
contract TokenOnlyWallet is IERC1271 {
    address public immutable token;

    constructor(address token_) {
        token = token_;
    }

    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        return msg.sender == token ? IERC1271.isValidSignature.selector : bytes4(0xffffffff);
    }
}

/// @notice USDC's rules that the mock keeps: the pause switch, a signer's code choosing ERC-1271
/// over ECDSA (so an EIP-7702-delegated EOA's plain signature needs a delegate that answers
/// ERC-1271), and ordered EIP-2612 nonces.
contract MockUSDCRulesTest is UsdcDeployer {
    event Pause();
    event Unpause();

    uint256 internal constant NOW = 1_750_000_000;

    MockUSDC internal usdc;
    address internal alice;
    uint256 internal aliceKey;
    address internal bob = address(0xB0B);

    function setUp() public {
        vm.warp(NOW);
        (alice, aliceKey) = makeAddrAndKey("alice");
        usdc = _deployUsdc();
        usdc.mint(alice, 100e6);
    }

    function _sign(bytes32 structHash) internal view returns (bytes memory) {
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", usdc.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(aliceKey, digest);
        return abi.encodePacked(r, s, v);
    }

    function _transferAuth(bytes32 nonce) internal view returns (bytes memory) {
        return
            _sign(
                keccak256(abi.encode(usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), alice, bob, 1e6, 0, NOW + 1, nonce))
            );
    }

    function _receiveAuth(bytes32 nonce) internal view returns (bytes memory) {
        return
            _sign(keccak256(abi.encode(usdc.RECEIVE_WITH_AUTHORIZATION_TYPEHASH(), alice, bob, 1e6, 0, NOW + 1, nonce)));
    }

    function _permitSig(uint256 value, uint256 nonce) internal view returns (bytes memory) {
        return _sign(keccak256(abi.encode(usdc.PERMIT_TYPEHASH(), alice, bob, value, nonce, NOW + 1)));
    }

    // ---------------------------------------------------------------- pause

    function test_pauseIsPauserOnly() public {
        vm.prank(alice);
        vm.expectRevert(MockUSDCRoles.OnlyPauser.selector);
        usdc.pause();
        vm.expectEmit(false, false, false, false, address(usdc));
        emit Pause();
        usdc.pause();
        assertTrue(usdc.paused());
        vm.prank(alice);
        vm.expectRevert(MockUSDCRoles.OnlyPauser.selector);
        usdc.unpause();
        vm.expectEmit(false, false, false, false, address(usdc));
        emit Unpause();
        usdc.unpause();
        assertFalse(usdc.paused());
    }

    function test_pauseStopsTransfersApprovalsAndMinting() public {
        vm.prank(alice);
        usdc.approve(bob, 10e6);
        usdc.pause();
        vm.startPrank(alice);
        vm.expectRevert(MockUSDCRoles.Paused.selector);
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transfer(bob, 1);
        vm.expectRevert(MockUSDCRoles.Paused.selector);
        usdc.approve(bob, 1);
        vm.stopPrank();
        vm.prank(bob);
        vm.expectRevert(MockUSDCRoles.Paused.selector);
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transferFrom(alice, bob, 1);
        vm.expectRevert(MockUSDCRoles.Paused.selector);
        usdc.mint(bob, 1);
        // Reads go on.
        assertEq(usdc.balanceOf(alice), 100e6);
        assertEq(usdc.allowance(alice, bob), 10e6);

        usdc.unpause();
        vm.prank(alice);
        assertTrue(usdc.transfer(bob, 1));
        assertEq(usdc.balanceOf(bob), 1);
    }

    function test_pauseStopsPermitsAndAuthorizations() public {
        bytes memory transferSig = _transferAuth("t");
        bytes memory receiveSig = _receiveAuth("r");
        bytes memory permitSig = _permitSig(5e6, 0);
        bytes memory cancelSig = _sign(keccak256(abi.encode(usdc.CANCEL_AUTHORIZATION_TYPEHASH(), alice, bytes32("c"))));
        usdc.pause();
        vm.expectRevert(MockUSDCRoles.Paused.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "t", transferSig);
        vm.prank(bob);
        vm.expectRevert(MockUSDCRoles.Paused.selector);
        usdc.receiveWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "r", receiveSig);
        vm.expectRevert(MockUSDCRoles.Paused.selector);
        usdc.permit(alice, bob, 5e6, NOW + 1, permitSig);
        vm.expectRevert(MockUSDCRoles.Paused.selector);
        usdc.cancelAuthorization(alice, "c", cancelSig);

        // Nothing was consumed: every one goes through once the token runs again.
        usdc.unpause();
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "t", transferSig);
        vm.prank(bob);
        usdc.receiveWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "r", receiveSig);
        usdc.permit(alice, bob, 5e6, NOW + 1, permitSig);
        usdc.cancelAuthorization(alice, "c", cancelSig);
        assertEq(usdc.balanceOf(bob), 2e6);
        assertEq(usdc.allowance(alice, bob), 5e6);
        assertTrue(usdc.authorizationState(alice, "c"));
    }

    // ---------------------------------------------------------------- a signer with code

    /// @notice Code at the signer's address (as an EIP-7702 delegation puts there) sends the
    /// check to ERC-1271 alone: the owner's valid ECDSA signature no longer counts.
    function test_signerWithCodeIsCheckedOnlyByErc1271() public {
        bytes memory transferSig = _transferAuth("t");
        bytes memory permitSig = _permitSig(5e6, 0);
        // A delegate with no ERC-1271 (the oracle's code answers nothing useful to it).
        vm.etch(alice, address(new MockSanctionsOracle()).code);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "t", transferSig);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.permit(alice, bob, 5e6, NOW + 1, permitSig);
        // Code that stops at once returns nothing: no magic value, refused as well.
        vm.etch(alice, hex"00");
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "t", transferSig);

        // A delegate that answers ERC-1271 for its owner's key: the same signatures go through.
        vm.etch(alice, address(new MockSmartWallet(alice)).code);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "t", transferSig);
        usdc.permit(alice, bob, 5e6, NOW + 1, permitSig);
        assertEq(usdc.balanceOf(bob), 1e6);
        assertEq(usdc.allowance(alice, bob), 5e6);
    }

    /// @notice An account with code is never checked by ECDSA, even when ERC-1271 says no to a
    /// signature ECDSA would accept; and the ERC-1271 question comes from the token itself.
    function test_erc1271IsAskedByTheToken() public {
        TokenOnlyWallet wallet = new TokenOnlyWallet(address(usdc));
        usdc.mint(address(wallet), 2e6);
        bytes memory anything = hex"1234";
        bytes32 structHash = keccak256(
            abi.encode(usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), address(wallet), bob, 2e6, 0, NOW + 1, bytes32(0))
        );
        usdc.transferWithAuthorization(address(wallet), bob, 2e6, 0, NOW + 1, bytes32(0), anything);
        assertEq(usdc.balanceOf(bob), 2e6);
        assertEq(wallet.isValidSignature(structHash, anything), bytes4(0xffffffff), "refuses anyone else");
    }

    /// @notice Without code, only a strict ECDSA signature: low s, v of 27 or 28, 65 bytes.
    function test_eoaNeedsAStrictEcdsaSignature() public {
        bytes memory sig = _transferAuth("t");
        bytes memory badV = abi.encodePacked(sig);
        badV[64] = bytes1(uint8(badV[64]) - 27);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "t", badV);
        bytes memory short = new bytes(64);
        for (uint256 i; i < 64; ++i) {
            short[i] = sig[i];
        }
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "t", short);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "t", sig);
    }

    // ---------------------------------------------------------------- permit nonces

    /// @notice EIP-2612 nonces are one counter per owner, used in order: a permit signed for the
    /// next nonce waits for the current one, and a refused permit consumes nothing.
    function test_permitNoncesAreOrdered() public {
        bytes memory first = _permitSig(1e6, 0);
        bytes memory second = _permitSig(2e6, 1);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.permit(alice, bob, 2e6, NOW + 1, second);
        assertEq(usdc.nonces(alice), 0, "a refused permit uses no nonce");

        usdc.permit(alice, bob, 1e6, NOW + 1, first);
        assertEq(usdc.nonces(alice), 1);
        assertEq(usdc.allowance(alice, bob), 1e6);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.permit(alice, bob, 1e6, NOW + 1, first);

        usdc.permit(alice, bob, 2e6, NOW + 1, second);
        assertEq(usdc.nonces(alice), 2);
        assertEq(usdc.allowance(alice, bob), 2e6);
    }
}

/// @notice The escrow on a paused token: nothing moves, and everything resumes with the token.
contract MockUSDCPausedEscrowTest is EscrowFixture {
    function test_pausedTokenStopsActivationAndPayouts() public {
        UsageEscrow.Activation memory live = _terms();
        live.salt = keccak256("live");
        _activate(live);
        bytes memory voucher = _signVoucher(buyerKey, live, 30);

        usdc.pause();
        UsageEscrow.Activation memory t = _terms();
        _expectActivateRevert(t, _err(MockUSDCRoles.Paused.selector));
        _expectClaimRevert(live, 30, voucher, _err(MockUSDCRoles.Paused.selector));
        assertTrue(_status(_keyOf(t)) == UsageEscrow.Status.None);

        usdc.unpause();
        _activate(t);
        vm.prank(seller);
        escrow.sellerClaim(live, 30, voucher);
        assertEq(uint256(escrow.escrowOf(_keyOf(live)).claimedUnits), 30);
    }
}
