// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {UsdcDeployer} from "./utils/UsdcDeployer.sol";
import {MockUSDC} from "../src/mocks/MockUSDC.sol";
import {MockUSDCAuthorizations} from "../src/mocks/MockUSDCAuthorizations.sol";
import {MockUSDCRoles} from "../src/mocks/MockUSDCRoles.sol";
import {MockSanctionsOracle} from "../src/mocks/MockSanctionsOracle.sol";
import {MockSmartWallet} from "../src/mocks/MockSmartWallet.sol";
import {FeeOnTransferUSDC} from "../src/mocks/FeeOnTransferUSDC.sol";
import {CallbackUSDC, ITokenTransferHook} from "../src/mocks/CallbackUSDC.sol";

/// @notice Records the hook calls CallbackUSDC makes.
contract RecordingHook is ITokenTransferHook {
    uint256 public calls;
    address public lastFrom;
    address public lastTo;
    uint256 public lastAmount;

    function onTokenTransfer(address from, address to, uint256 amount) external {
        ++calls;
        (lastFrom, lastTo, lastAmount) = (from, to, amount);
    }
}

/// @notice The mocks behave like USDC (FiatToken v2.2) and the Chainalysis oracle, with real
/// signatures, so the escrow suite can rely on them.
contract MockUSDCTest is UsdcDeployer {
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    uint256 internal constant NOW = 1_750_000_000;
    /// @dev secp256k1 group order, to build the high-s twin of a signature.
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    MockUSDC internal usdc;
    MockSanctionsOracle internal oracle;

    address internal alice;
    uint256 internal aliceKey;
    address internal bob;
    uint256 internal bobKey;
    address internal relayer = address(0xBEEF);

    function setUp() public {
        vm.warp(NOW);
        (alice, aliceKey) = makeAddrAndKey("alice");
        (bob, bobKey) = makeAddrAndKey("bob");
        usdc = _deployUsdc();
        oracle = new MockSanctionsOracle();
        usdc.mint(alice, 1_000e6);
    }

    // ---------------------------------------------------------------- signing helpers

    function _digest(MockUSDC token, bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
    }

    function _sig(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _authDigest(
        MockUSDC token,
        bytes32 typehash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce
    ) internal view returns (bytes32) {
        return _digest(token, keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce)));
    }

    function _signTransfer(
        uint256 key,
        address from,
        address to,
        uint256 value,
        uint256 after_,
        uint256 before,
        bytes32 nonce
    ) internal view returns (bytes memory) {
        return _sig(
            key, _authDigest(usdc, usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), from, to, value, after_, before, nonce)
        );
    }

    function _signReceive(
        uint256 key,
        address from,
        address to,
        uint256 value,
        uint256 after_,
        uint256 before,
        bytes32 nonce
    ) internal view returns (bytes memory) {
        return _sig(
            key, _authDigest(usdc, usdc.RECEIVE_WITH_AUTHORIZATION_TYPEHASH(), from, to, value, after_, before, nonce)
        );
    }

    function _signPermit(uint256 key, address holder, address spender, uint256 value, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        bytes32 structHash =
            keccak256(abi.encode(usdc.PERMIT_TYPEHASH(), holder, spender, value, usdc.nonces(holder), deadline));
        return _sig(key, _digest(usdc, structHash));
    }

    function _signCancel(uint256 key, address authorizer, bytes32 nonce) internal view returns (bytes memory) {
        bytes32 structHash = keccak256(abi.encode(usdc.CANCEL_AUTHORIZATION_TYPEHASH(), authorizer, nonce));
        return _sig(key, _digest(usdc, structHash));
    }

    function _split(bytes memory sig) internal pure returns (uint8 v, bytes32 r, bytes32 s) {
        assembly ("memory-safe") {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
    }

    // ---------------------------------------------------------------- metadata and admin

    function test_metadataMatchesUsdc() public view {
        assertEq(usdc.decimals(), 6);
        assertEq(keccak256(bytes(usdc.name())), keccak256("USD Coin"));
        assertEq(keccak256(bytes(usdc.symbol())), keccak256("USDC"));
        bytes32 expected = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("USD Coin"),
                keccak256("2"),
                block.chainid,
                address(usdc)
            )
        );
        assertEq(usdc.DOMAIN_SEPARATOR(), expected);
        assertEq(
            usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(),
            0x7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267
        );
        assertEq(
            usdc.RECEIVE_WITH_AUTHORIZATION_TYPEHASH(),
            0xd099cc98ef71107a616c4f0f941f04c322d8e254fe26b3c6668db87aae413de8
        );
        assertEq(
            usdc.CANCEL_AUTHORIZATION_TYPEHASH(), 0x158b0a9edf7a828aad02f63cd515c68ef2f50ba807396f6d12842833a1597429
        );
        assertEq(usdc.PERMIT_TYPEHASH(), 0x6e71edae12b1b97f4d1f60370fef10105fa2faae0126114a169c64845d6126c9);
    }

    function test_mintIsOwnerOnly() public {
        vm.prank(alice);
        vm.expectRevert(MockUSDCRoles.OnlyOwner.selector);
        usdc.mint(alice, 1);
        usdc.mint(bob, 5);
        assertEq(usdc.balanceOf(bob), 5);
    }

    function test_blacklistIsBlacklisterOnly() public {
        vm.prank(alice);
        vm.expectRevert(MockUSDCRoles.OnlyBlacklister.selector);
        usdc.blacklist(bob);
        vm.prank(alice);
        vm.expectRevert(MockUSDCRoles.OnlyBlacklister.selector);
        usdc.unBlacklist(bob);
    }

    // ---------------------------------------------------------------- permit

    function test_permitSplitForm() public {
        bytes memory sig = _signPermit(aliceKey, alice, bob, 7e6, NOW + 1);
        (uint8 v, bytes32 r, bytes32 s) = _split(sig);
        vm.prank(relayer);
        usdc.permit(alice, bob, 7e6, NOW + 1, v, r, s);
        assertEq(usdc.allowance(alice, bob), 7e6);
        assertEq(usdc.nonces(alice), 1);
    }

    function test_permitBytesFormAndSpend() public {
        bytes memory sig = _signPermit(aliceKey, alice, bob, 7e6, NOW);
        usdc.permit(alice, bob, 7e6, NOW, sig); // deadline == now is still valid
        vm.prank(bob);
        assertTrue(usdc.transferFrom(alice, bob, 7e6));
        assertEq(usdc.balanceOf(bob), 7e6);
        assertEq(usdc.allowance(alice, bob), 0);
    }

    function test_permitExpired() public {
        bytes memory sig = _signPermit(aliceKey, alice, bob, 7e6, NOW - 1);
        vm.expectRevert(MockUSDCAuthorizations.PermitExpired.selector);
        usdc.permit(alice, bob, 7e6, NOW - 1, sig);
    }

    function test_permitReplayRefused() public {
        bytes memory sig = _signPermit(aliceKey, alice, bob, 7e6, NOW + 1);
        usdc.permit(alice, bob, 7e6, NOW + 1, sig);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.permit(alice, bob, 7e6, NOW + 1, sig);
    }

    function test_permitWrongSigner() public {
        bytes memory sig = _signPermit(bobKey, alice, bob, 7e6, NOW + 1);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.permit(alice, bob, 7e6, NOW + 1, sig);
    }

    function test_permitAlteredValueRefused() public {
        bytes memory sig = _signPermit(aliceKey, alice, bob, 7e6, NOW + 1);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.permit(alice, bob, 8e6, NOW + 1, sig);
    }

    // ---------------------------------------------------------------- transferWithAuthorization

    function test_transferWithAuthorizationBytesForm() public {
        bytes32 nonce = keccak256("n1");
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 10e6, 0, NOW + 1, nonce);
        vm.expectEmit(true, true, false, true, address(usdc));
        emit AuthorizationUsed(alice, nonce);
        vm.prank(relayer);
        usdc.transferWithAuthorization(alice, bob, 10e6, 0, NOW + 1, nonce, sig);
        assertEq(usdc.balanceOf(bob), 10e6);
        assertEq(usdc.balanceOf(alice), 990e6);
        assertTrue(usdc.authorizationState(alice, nonce));
    }

    function test_transferWithAuthorizationSplitForm() public {
        bytes32 nonce = keccak256("n1");
        (uint8 v, bytes32 r, bytes32 s) = _split(_signTransfer(aliceKey, alice, bob, 10e6, 0, NOW + 1, nonce));
        usdc.transferWithAuthorization(alice, bob, 10e6, 0, NOW + 1, nonce, v, r, s);
        assertEq(usdc.balanceOf(bob), 10e6);
    }

    function test_validAfterBoundaries() public {
        // validAfter == now: not yet valid (strictly after is required).
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 1, NOW, NOW + 10, "a");
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationNotYetValid.selector);
        usdc.transferWithAuthorization(alice, bob, 1, NOW, NOW + 10, "a", sig);
        // validAfter == now + 1: not yet valid.
        sig = _signTransfer(aliceKey, alice, bob, 1, NOW + 1, NOW + 10, "b");
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationNotYetValid.selector);
        usdc.transferWithAuthorization(alice, bob, 1, NOW + 1, NOW + 10, "b", sig);
        // validAfter == now - 1: valid.
        sig = _signTransfer(aliceKey, alice, bob, 1, NOW - 1, NOW + 10, "c");
        usdc.transferWithAuthorization(alice, bob, 1, NOW - 1, NOW + 10, "c", sig);
        assertEq(usdc.balanceOf(bob), 1);
    }

    function test_validBeforeBoundaries() public {
        // validBefore == now: expired (strictly before is required).
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 1, 0, NOW, "a");
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationExpired.selector);
        usdc.transferWithAuthorization(alice, bob, 1, 0, NOW, "a", sig);
        // validBefore == now - 1: expired.
        sig = _signTransfer(aliceKey, alice, bob, 1, 0, NOW - 1, "b");
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationExpired.selector);
        usdc.transferWithAuthorization(alice, bob, 1, 0, NOW - 1, "b", sig);
        // validBefore == now + 1: valid.
        sig = _signTransfer(aliceKey, alice, bob, 1, 0, NOW + 1, "c");
        usdc.transferWithAuthorization(alice, bob, 1, 0, NOW + 1, "c", sig);
        assertEq(usdc.balanceOf(bob), 1);
    }

    function test_transferWithAuthorizationReplayRefused() public {
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 1e6, 0, NOW + 1, "n");
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "n", sig);
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationAlreadyUsed.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "n", sig);
    }

    function test_transferWithAuthorizationWrongSignerOrTerms() public {
        bytes memory sig = _signTransfer(bobKey, alice, bob, 1e6, 0, NOW + 1, "n");
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "n", sig);
        sig = _signTransfer(aliceKey, alice, bob, 1e6, 0, NOW + 1, "n");
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, relayer, 1e6, 0, NOW + 1, "n", sig);
    }

    function test_highSAndBadVRefused() public {
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 1e6, 0, NOW + 1, "n");
        (uint8 v, bytes32 r, bytes32 s) = _split(sig);
        // The same signature with s' = n - s and the other v recovers the same key: refused.
        bytes32 highS = bytes32(N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "n", flippedV, r, highS);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "n", v - 27, r, s);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "n", 29, r, s);
        // The original still works.
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "n", v, r, s);
    }

    function testFuzz_transferWithAuthorization(uint256 value, uint256 validAfter, uint256 validBefore) public {
        value = bound(value, 0, 1_000e6);
        validAfter = bound(validAfter, 0, NOW - 1);
        validBefore = bound(validBefore, NOW + 1, type(uint256).max);
        bytes32 nonce = keccak256(abi.encode(value, validAfter, validBefore));
        bytes memory sig = _signTransfer(aliceKey, alice, bob, value, validAfter, validBefore, nonce);
        usdc.transferWithAuthorization(alice, bob, value, validAfter, validBefore, nonce, sig);
        assertEq(usdc.balanceOf(bob), value);
        assertEq(usdc.balanceOf(alice), 1_000e6 - value);
    }

    // ---------------------------------------------------------------- receiveWithAuthorization

    function test_receiveWithAuthorizationByPayee() public {
        bytes memory sig = _signReceive(aliceKey, alice, bob, 3e6, 0, NOW + 1, "r");
        vm.prank(bob);
        usdc.receiveWithAuthorization(alice, bob, 3e6, 0, NOW + 1, "r", sig);
        assertEq(usdc.balanceOf(bob), 3e6);
        assertTrue(usdc.authorizationState(alice, "r"));

        (uint8 v, bytes32 r, bytes32 s) = _split(_signReceive(aliceKey, alice, bob, 2e6, 0, NOW + 1, "r2"));
        vm.prank(bob);
        usdc.receiveWithAuthorization(alice, bob, 2e6, 0, NOW + 1, "r2", v, r, s);
        assertEq(usdc.balanceOf(bob), 5e6);
    }

    function test_receiveWithAuthorizationCallerMustBePayee() public {
        bytes memory sig = _signReceive(aliceKey, alice, bob, 3e6, 0, NOW + 1, "r");
        vm.prank(relayer);
        vm.expectRevert(MockUSDCAuthorizations.CallerMustBePayee.selector);
        usdc.receiveWithAuthorization(alice, bob, 3e6, 0, NOW + 1, "r", sig);
        (uint8 v, bytes32 r, bytes32 s) = _split(sig);
        vm.prank(relayer);
        vm.expectRevert(MockUSDCAuthorizations.CallerMustBePayee.selector);
        usdc.receiveWithAuthorization(alice, bob, 3e6, 0, NOW + 1, "r", v, r, s);
    }

    function test_receiveWithAuthorizationBoundaries() public {
        bytes memory sig = _signReceive(aliceKey, alice, bob, 1, NOW, NOW + 1, "a");
        vm.prank(bob);
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationNotYetValid.selector);
        usdc.receiveWithAuthorization(alice, bob, 1, NOW, NOW + 1, "a", sig);
        sig = _signReceive(aliceKey, alice, bob, 1, NOW - 1, NOW, "b");
        vm.prank(bob);
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationExpired.selector);
        usdc.receiveWithAuthorization(alice, bob, 1, NOW - 1, NOW, "b", sig);
        sig = _signReceive(aliceKey, alice, bob, 1, NOW - 1, NOW + 1, "c");
        vm.prank(bob);
        usdc.receiveWithAuthorization(alice, bob, 1, NOW - 1, NOW + 1, "c", sig);
        assertEq(usdc.balanceOf(bob), 1);
        // After one more second the same window has closed.
        sig = _signReceive(aliceKey, alice, bob, 1, NOW - 1, NOW + 1, "d");
        vm.warp(NOW + 1);
        vm.prank(bob);
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationExpired.selector);
        usdc.receiveWithAuthorization(alice, bob, 1, NOW - 1, NOW + 1, "d", sig);
    }

    function test_receiveWithAuthorizationReplayRefused() public {
        bytes memory sig = _signReceive(aliceKey, alice, bob, 1e6, 0, NOW + 1, "r");
        vm.startPrank(bob);
        usdc.receiveWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "r", sig);
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationAlreadyUsed.selector);
        usdc.receiveWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "r", sig);
        vm.stopPrank();
    }

    /// @notice A payee-bound receive signature cannot be front-run through transferWithAuthorization.
    function test_receiveSignatureRefusedByTransferWithAuthorization() public {
        bytes memory sig = _signReceive(aliceKey, alice, bob, 1e6, 0, NOW + 1, "r");
        vm.prank(relayer);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "r", sig);
        assertFalse(usdc.authorizationState(alice, "r"));
    }

    function test_transferSignatureRefusedByReceiveWithAuthorization() public {
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 1e6, 0, NOW + 1, "t");
        vm.prank(bob);
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.receiveWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "t", sig);
    }

    function test_signatureForAnotherTokenRefused() public {
        MockUSDC other = _deployUsdc();
        other.mint(alice, 1e6);
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 1e6, 0, NOW + 1, "x");
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        other.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "x", sig);
    }

    // ---------------------------------------------------------------- cancelAuthorization

    function test_cancelAuthorization() public {
        bytes memory transferSig = _signTransfer(aliceKey, alice, bob, 1e6, 0, NOW + 1, "c");
        bytes memory cancelSig = _signCancel(aliceKey, alice, "c");
        vm.expectEmit(true, true, false, true, address(usdc));
        emit AuthorizationCanceled(alice, "c");
        vm.prank(relayer);
        usdc.cancelAuthorization(alice, "c", cancelSig);
        assertTrue(usdc.authorizationState(alice, "c"));

        vm.expectRevert(MockUSDCAuthorizations.AuthorizationAlreadyUsed.selector);
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "c", transferSig);
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationAlreadyUsed.selector);
        usdc.cancelAuthorization(alice, "c", cancelSig);
    }

    function test_cancelAuthorizationSplitFormAndWrongSigner() public {
        bytes memory wrongSig = _signCancel(bobKey, alice, "c");
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.cancelAuthorization(alice, "c", wrongSig);
        (uint8 v, bytes32 r, bytes32 s) = _split(_signCancel(aliceKey, alice, "c"));
        usdc.cancelAuthorization(alice, "c", v, r, s);
        assertTrue(usdc.authorizationState(alice, "c"));
    }

    function test_cannotCancelUsedAuthorization() public {
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 1e6, 0, NOW + 1, "u");
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "u", sig);
        bytes memory cancelSig = _signCancel(aliceKey, alice, "u");
        vm.expectRevert(MockUSDCAuthorizations.AuthorizationAlreadyUsed.selector);
        usdc.cancelAuthorization(alice, "u", cancelSig);
    }

    // ---------------------------------------------------------------- ERC-1271 smart wallets

    function test_smartWalletAuthorizationAndPermit() public {
        MockSmartWallet wallet = new MockSmartWallet(alice);
        usdc.mint(address(wallet), 10e6);

        bytes memory sig = _signReceive(aliceKey, address(wallet), bob, 4e6, 0, NOW + 1, "w");
        vm.prank(bob);
        usdc.receiveWithAuthorization(address(wallet), bob, 4e6, 0, NOW + 1, "w", sig);
        assertEq(usdc.balanceOf(bob), 4e6);

        sig = _signPermit(aliceKey, address(wallet), bob, 6e6, NOW + 1);
        usdc.permit(address(wallet), bob, 6e6, NOW + 1, sig);
        assertEq(usdc.allowance(address(wallet), bob), 6e6);
    }

    function test_smartWalletRefusesOtherSigner() public {
        MockSmartWallet wallet = new MockSmartWallet(alice);
        usdc.mint(address(wallet), 10e6);
        bytes memory sig = _signTransfer(bobKey, address(wallet), bob, 4e6, 0, NOW + 1, "w");
        vm.expectRevert(MockUSDCAuthorizations.InvalidSignature.selector);
        usdc.transferWithAuthorization(address(wallet), bob, 4e6, 0, NOW + 1, "w", sig);
    }

    function test_smartWalletMagicValueAndExecute() public {
        MockSmartWallet wallet = new MockSmartWallet(alice);
        bytes32 hash = keccak256("message");
        assertEq(wallet.isValidSignature(hash, _sig(aliceKey, hash)), bytes4(0x1626ba7e));
        assertEq(wallet.isValidSignature(hash, _sig(bobKey, hash)), bytes4(0xffffffff));
        assertEq(wallet.isValidSignature(hash, hex"1234"), bytes4(0xffffffff));

        usdc.mint(address(wallet), 5e6);
        vm.prank(bob);
        vm.expectRevert(MockSmartWallet.OnlyOwner.selector);
        wallet.execute(address(usdc), abi.encodeCall(usdc.transfer, (bob, 5e6)));
        vm.prank(alice);
        wallet.execute(address(usdc), abi.encodeCall(usdc.transfer, (bob, 5e6)));
        assertEq(usdc.balanceOf(bob), 5e6);
        // Reverts bubble up unchanged.
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.InsufficientBalance.selector, address(wallet), 0, 1));
        wallet.execute(address(usdc), abi.encodeCall(usdc.transfer, (bob, 1)));
    }

    // ---------------------------------------------------------------- blacklist

    function test_blacklistBlocksTransfersBothWays() public {
        usdc.blacklist(bob);
        assertTrue(usdc.isBlacklisted(bob));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, bob));
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transfer(bob, 1);

        usdc.unBlacklist(bob);
        vm.prank(alice);
        assertTrue(usdc.transfer(bob, 1));
        usdc.blacklist(bob);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, bob));
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transfer(alice, 1);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, bob));
        usdc.mint(bob, 1);
    }

    function test_blacklistBlocksAuthorizationsAndPermits() public {
        usdc.blacklist(alice);
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 1, 0, NOW + 1, "n");
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, alice));
        usdc.transferWithAuthorization(alice, bob, 1, 0, NOW + 1, "n", sig);

        sig = _signReceive(aliceKey, alice, bob, 1, 0, NOW + 1, "n");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, alice));
        usdc.receiveWithAuthorization(alice, bob, 1, 0, NOW + 1, "n", sig);

        sig = _signPermit(aliceKey, alice, bob, 1, NOW + 1);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, alice));
        usdc.permit(alice, bob, 1, NOW + 1, sig);

        sig = _signCancel(aliceKey, alice, "n");
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, alice));
        usdc.cancelAuthorization(alice, "n", sig);
    }

    function test_blacklistedPayeeAndSpenderRefused() public {
        usdc.blacklist(bob);
        bytes memory sig = _signTransfer(aliceKey, alice, bob, 1, 0, NOW + 1, "n");
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, bob));
        usdc.transferWithAuthorization(alice, bob, 1, 0, NOW + 1, "n", sig);

        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, bob));
        usdc.approve(bob, 1);
    }

    /// @dev The storage slot of MockUSDC's `_balanceAndBlacklistState` mapping
    /// (`forge inspect contracts/src/mocks/MockUSDC.sol:MockUSDC storageLayout`).
    uint256 internal constant BALANCE_SLOT = 7;

    function _word(address account) internal view returns (uint256) {
        return uint256(vm.load(address(usdc), keccak256(abi.encode(account, BALANCE_SLOT))));
    }

    /// @notice As in FiatToken v2.2, the flag is bit 255 of the balance word, so a blacklist
    /// check reads no slot a transfer does not read anyway.
    function test_blacklistFlagSharesTheBalanceWord() public {
        assertEq(_word(alice), 1_000e6);
        usdc.blacklist(alice);
        assertEq(_word(alice), (1 << 255) | 1_000e6);
        assertEq(usdc.balanceOf(alice), 1_000e6, "blacklisting keeps the balance");
        assertEq(usdc.totalSupply(), 1_000e6);
        usdc.unBlacklist(alice);
        assertEq(_word(alice), 1_000e6);
        assertFalse(usdc.isBlacklisted(alice));
        // Blacklisting an account with no balance sets only the flag.
        usdc.blacklist(bob);
        assertEq(_word(bob), 1 << 255);
        assertEq(usdc.balanceOf(bob), 0);
    }

    function test_blacklistedBalanceIsFrozenThenRestored() public {
        usdc.blacklist(alice);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, alice));
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transfer(bob, 1);
        usdc.unBlacklist(alice);
        vm.prank(alice);
        assertTrue(usdc.transfer(bob, 1_000e6));
        assertEq(usdc.balanceOf(bob), 1_000e6);
        assertEq(usdc.balanceOf(alice), 0);
    }

    function test_blacklistedSpenderOwnerOrPayeeRefusedInTransferFrom() public {
        vm.prank(alice);
        usdc.approve(bob, 10);

        usdc.blacklist(bob);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, bob));
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transferFrom(alice, relayer, 1);
        usdc.unBlacklist(bob);

        usdc.blacklist(relayer);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, relayer));
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transferFrom(alice, relayer, 1);
        usdc.unBlacklist(relayer);

        usdc.blacklist(alice);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, alice));
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transferFrom(alice, relayer, 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.Blacklisted.selector, alice));
        usdc.approve(relayer, 1);
    }

    // ---------------------------------------------------------------- ERC-20 core

    function test_transferAndEvents() public {
        vm.expectEmit(true, true, false, true, address(usdc));
        emit Transfer(alice, bob, 5e6);
        vm.prank(alice);
        assertTrue(usdc.transfer(bob, 5e6));
        assertEq(usdc.balanceOf(alice), 995e6);
        assertEq(usdc.balanceOf(bob), 5e6);
        assertEq(usdc.totalSupply(), 1_000e6);

        // A transfer to oneself keeps the balance.
        vm.prank(bob);
        assertTrue(usdc.transfer(bob, 5e6));
        assertEq(usdc.balanceOf(bob), 5e6);

        vm.expectEmit(true, true, false, true, address(usdc));
        emit Approval(alice, bob, 3);
        vm.prank(alice);
        assertTrue(usdc.approve(bob, 3));
        assertEq(usdc.allowance(alice, bob), 3);
    }

    function test_insufficientBalanceAndAllowance() public {
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.InsufficientBalance.selector, bob, 0, 1));
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transfer(alice, 1);

        vm.prank(alice);
        usdc.approve(bob, 2e6);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.InsufficientAllowance.selector, bob, 2e6, 3e6));
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transferFrom(alice, bob, 3e6);

        vm.prank(alice);
        usdc.approve(bob, 2_000e6);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(MockUSDC.InsufficientBalance.selector, alice, 1_000e6, 2_000e6));
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transferFrom(alice, bob, 2_000e6);
    }

    function test_zeroAddressRefused() public {
        vm.startPrank(alice);
        vm.expectRevert(MockUSDC.ZeroAddress.selector);
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transfer(address(0), 1);
        vm.expectRevert(MockUSDC.ZeroAddress.selector);
        usdc.approve(address(0), 1);
        vm.stopPrank();
        vm.expectRevert(MockUSDC.ZeroAddress.selector);
        usdc.mint(address(0), 1);
    }

    /// @notice Like FiatToken v2.2 there is no infinite allowance: the maximum is decremented too.
    function test_allowanceAlwaysDecremented() public {
        vm.prank(alice);
        usdc.approve(bob, type(uint256).max);
        vm.prank(bob);
        assertTrue(usdc.transferFrom(alice, relayer, 4e6));
        assertEq(usdc.allowance(alice, bob), type(uint256).max - 4e6);
        assertEq(usdc.balanceOf(relayer), 4e6);
    }

    /// @notice Balances cannot reach bit 255, the blacklist flag: the supply is capped below it.
    function test_supplyCappedBelowTheFlagBit() public {
        uint256 cap = (1 << 255) - 1;
        usdc.mint(bob, cap - usdc.totalSupply());
        assertEq(usdc.totalSupply(), cap);
        assertFalse(usdc.isBlacklisted(bob));
        vm.expectRevert(MockUSDC.SupplyOverflow.selector);
        usdc.mint(bob, 1);
        vm.expectRevert(MockUSDC.SupplyOverflow.selector);
        usdc.mint(alice, type(uint256).max);
    }

    function testFuzz_transferKeepsFlagAndSupply(uint256 amount, bool blacklistBob) public {
        amount = bound(amount, 0, 1_000e6);
        vm.prank(alice);
        assertTrue(usdc.transfer(bob, amount));
        if (blacklistBob) usdc.blacklist(bob);
        assertEq(usdc.balanceOf(alice) + usdc.balanceOf(bob), usdc.totalSupply());
        assertEq(usdc.balanceOf(bob), amount);
        assertEq(usdc.isBlacklisted(bob), blacklistBob);
        assertEq(_word(bob), (blacklistBob ? 1 << 255 : 0) | amount);
    }

    // ---------------------------------------------------------------- token variants

    function test_feeOnTransferBurnsOnePercent() public {
        FeeOnTransferUSDC fot = FeeOnTransferUSDC(address(_behindProxy(new FeeOnTransferUSDC())));
        fot.mint(alice, 100e6);
        vm.prank(alice);
        assertTrue(fot.transfer(bob, 100e6));
        assertEq(fot.balanceOf(bob), 99e6);
        assertEq(fot.balanceOf(alice), 0);
        assertEq(fot.totalSupply(), 99e6);
    }

    function test_callbackTokenCallsHook() public {
        CallbackUSDC token = CallbackUSDC(address(_behindProxy(new CallbackUSDC())));
        RecordingHook hook = new RecordingHook();
        token.mint(alice, 10e6);
        token.setHook(address(hook));
        vm.prank(alice);
        assertTrue(token.transfer(bob, 1e6)); // the hook is not a party: no call
        assertEq(hook.calls(), 0);
        vm.prank(alice);
        assertTrue(token.transfer(address(hook), 2e6));
        assertEq(hook.calls(), 1);
        assertEq(hook.lastFrom(), alice);
        assertEq(hook.lastTo(), address(hook));
        assertEq(hook.lastAmount(), 2e6);

        vm.prank(alice);
        vm.expectRevert(MockUSDCRoles.OnlyOwner.selector);
        token.setHook(alice);
    }

    // ---------------------------------------------------------------- sanctions oracle

    function _list(address a) internal pure returns (address[] memory l) {
        l = new address[](1);
        l[0] = a;
    }

    function test_oracleListAndUnlist() public {
        assertFalse(oracle.isSanctioned(bob));
        oracle.addToSanctionsList(_list(bob));
        assertTrue(oracle.isSanctioned(bob));
        assertFalse(oracle.isSanctioned(alice));
        oracle.removeFromSanctionsList(_list(bob));
        assertFalse(oracle.isSanctioned(bob));
    }

    function test_oracleIsOwnerOnly() public {
        vm.startPrank(alice);
        vm.expectRevert(MockSanctionsOracle.OnlyOwner.selector);
        oracle.addToSanctionsList(_list(alice));
        vm.expectRevert(MockSanctionsOracle.OnlyOwner.selector);
        oracle.removeFromSanctionsList(_list(alice));
        vm.expectRevert(MockSanctionsOracle.OnlyOwner.selector);
        oracle.setReverting(true);
        vm.stopPrank();
    }

    function test_oracleRevertingMode() public {
        oracle.setReverting(true);
        vm.expectRevert(MockSanctionsOracle.OracleDown.selector);
        oracle.isSanctioned(bob);
        oracle.setReverting(false);
        assertFalse(oracle.isSanctioned(bob));
    }
}
