// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {UsdcDeployer} from "./UsdcDeployer.sol";
import {UsageEscrow} from "../../src/UsageEscrow.sol";
import {IFiatToken} from "../../src/interfaces/IFiatToken.sol";
import {ISanctionsOracle} from "../../src/interfaces/ISanctionsOracle.sol";
import {MockUSDC} from "../../src/mocks/MockUSDC.sol";
import {MockSanctionsOracle} from "../../src/mocks/MockSanctionsOracle.sol";

/// @notice Deploys the escrow against mock USDC (behind its proxy, whose address is the token's)
/// and a mock oracle, and signs every typed struct with real keys (vm.sign), so tests read as the
/// flow a buyer and a seller go through.
abstract contract EscrowFixture is UsdcDeployer {
    bytes32 internal constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    /// @dev 1 USDC in base units.
    uint256 internal constant USDC = 1e6;
    uint256 internal constant START = 1_750_000_000;

    MockUSDC internal usdc;
    MockSanctionsOracle internal oracle;
    UsageEscrow internal escrow;

    uint256 internal buyerKey;
    uint256 internal sellerKey;
    address internal buyer;
    address internal seller;
    address internal feeRecipient;
    address internal relayer;

    function setUp() public virtual {
        vm.warp(START);
        (buyer, buyerKey) = makeAddrAndKey("buyer");
        (seller, sellerKey) = makeAddrAndKey("seller");
        feeRecipient = address(0xFEE);
        relayer = address(0xBEEF);
        usdc = _deployUsdc();
        oracle = new MockSanctionsOracle();
        escrow = _deployEscrow(IFiatToken(address(usdc)));
        usdc.mint(buyer, 1_000_000 * USDC);
        // Seller and fee recipient already hold USDC, as they would after a first payment.
        usdc.mint(seller, 1 * USDC);
        usdc.mint(feeRecipient, 1 * USDC);
    }

    function _deployEscrow(IFiatToken token) internal returns (UsageEscrow) {
        return new UsageEscrow(token, ISanctionsOracle(address(oracle)), feeRecipient);
    }

    // ---------------------------------------------------------------- terms

    /// @notice 100 units at 0.10 USDC, fee 0.10 USDC, one hour to activate, a day to expiry,
    /// an hour of close window.
    function _terms() internal view returns (UsageEscrow.Activation memory t) {
        t = UsageEscrow.Activation({
            buyer: buyer,
            seller: seller,
            unitPrice: 100_000,
            quantity: 100,
            infraFee: 100_000,
            activateBy: block.timestamp + 1 hours,
            expiry: block.timestamp + 1 days,
            closeWindow: 1 hours,
            salt: keccak256("salt"),
            agreementId: keccak256("agreement-1")
        });
    }

    function _deposit(UsageEscrow.Activation memory t) internal pure returns (uint256) {
        return t.quantity * t.unitPrice;
    }

    // ---------------------------------------------------------------- signing

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _typedDigest(bytes32 domainSeparator, bytes32 structHash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }

    function _keyOf(UsageEscrow.Activation memory t) internal view returns (bytes32) {
        return escrow.agreementKey(t);
    }

    function _signActivation(uint256 key, UsageEscrow.Activation memory t) internal view returns (bytes memory) {
        return _sign(key, _keyOf(t));
    }

    /// @notice The buyer's USDC ReceiveWithAuthorization as the escrow asks for it.
    function _signFunding(uint256 key, UsageEscrow.Activation memory t) internal view returns (bytes memory) {
        return _signFundingFor(key, address(usdc), address(escrow), t);
    }

    function _signFundingFor(uint256 key, address token, address escrowAddress, UsageEscrow.Activation memory t)
        internal
        view
        returns (bytes memory)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                RECEIVE_WITH_AUTHORIZATION_TYPEHASH,
                t.buyer,
                escrowAddress,
                _deposit(t),
                0,
                t.activateBy,
                UsageEscrow(escrowAddress).agreementKey(t)
            )
        );
        return _sign(key, _typedDigest(IFiatToken(token).DOMAIN_SEPARATOR(), structHash));
    }

    /// @notice The buyer's USDC ReceiveWithAuthorization of the infra fee to the escrow, with the
    /// nonce the escrow derives from the agreement key.
    function _signFeeAuthorization(uint256 key, UsageEscrow.Activation memory t) internal view returns (bytes memory) {
        return _signTokenAuthorization(
            key,
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH,
            t.buyer,
            address(escrow),
            t.infraFee,
            t.activateBy,
            escrow.infraFeeNonce(_keyOf(t))
        );
    }

    /// @notice Any EIP-3009 authorization of `usdc` (`typehash` picks Transfer or Receive) with
    /// `validAfter` 0, signed with `key`.
    function _signTokenAuthorization(
        uint256 key,
        bytes32 typehash,
        address from,
        address to,
        uint256 value,
        uint256 validBefore,
        bytes32 nonce
    ) internal view returns (bytes memory) {
        bytes32 structHash = keccak256(abi.encode(typehash, from, to, value, 0, validBefore, nonce));
        return _sign(key, _typedDigest(usdc.DOMAIN_SEPARATOR(), structHash));
    }

    /// @notice An EIP-2612 permit of `usdc` at `owner`'s current nonce, signed with `key`.
    function _signPermit(uint256 key, address owner, address spender, uint256 value, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, usdc.nonces(owner), deadline));
        return _sign(key, _typedDigest(usdc.DOMAIN_SEPARATOR(), structHash));
    }

    function _signVoucher(uint256 key, UsageEscrow.Activation memory t, uint256 units)
        internal
        view
        returns (bytes memory)
    {
        return _sign(key, escrow.usageVoucherDigest(_keyOf(t), units));
    }

    function _signClaim(uint256 key, UsageEscrow.Activation memory t, uint256 units, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        return _sign(key, escrow.sellerClaimDigest(_keyOf(t), units, deadline));
    }

    function _signWithdraw(uint256 key, UsageEscrow.Activation memory t, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        return _sign(key, escrow.buyerWithdrawDigest(_keyOf(t), deadline));
    }

    function _signClose(
        uint256 key,
        UsageEscrow.Activation memory t,
        address party,
        uint256 finalUnits,
        uint256 deadline
    ) internal view returns (bytes memory) {
        return _sign(key, escrow.initiateCloseDigest(_keyOf(t), party, finalUnits, deadline));
    }

    /// @notice The buyer's three signatures for `t`: activation, funding, and the fee
    /// authorization (empty when there is no fee).
    function _signAll(UsageEscrow.Activation memory t)
        internal
        view
        returns (bytes memory activationSig, bytes memory fundingSig, bytes memory feeSig)
    {
        activationSig = _signActivation(buyerKey, t);
        fundingSig = _signFunding(buyerKey, t);
        feeSig = t.infraFee == 0 ? bytes("") : _signFeeAuthorization(buyerKey, t);
    }

    // ---------------------------------------------------------------- flows

    /// @notice Activates `t` with all three buyer signatures, sent by the relayer.
    function _activate(UsageEscrow.Activation memory t) internal returns (bytes32 key) {
        (bytes memory activationSig, bytes memory fundingSig, bytes memory feeSig) = _signAll(t);
        vm.prank(relayer);
        key = escrow.activate(t, activationSig, fundingSig, feeSig);
    }

    function _status(bytes32 key) internal view returns (UsageEscrow.Status) {
        return escrow.escrowOf(key).status;
    }

    /// @notice Activates `t` and warps to `expiry + closeWindow`, when the buyer may withdraw
    /// without a close.
    function _activateAndWarpToWithdraw(UsageEscrow.Activation memory t) internal returns (bytes32 key) {
        key = _activate(t);
        vm.warp(t.expiry + t.closeWindow);
    }

    /// @notice The seller claims `units` directly with the buyer's voucher.
    function _claim(UsageEscrow.Activation memory t, uint256 units) internal {
        bytes memory voucher = _signVoucher(buyerKey, t, units);
        vm.prank(seller);
        escrow.sellerClaim(t, units, voucher);
    }

    /// @notice The relayer claims `units` for the seller with the buyer's voucher and the seller's
    /// SellerClaim authorization; expects `expectedError` when it is not empty. Everything is signed
    /// before the expectation, which applies to the very next call.
    function _claimWithAuthorization(
        UsageEscrow.Activation memory t,
        uint256 units,
        uint256 deadline,
        bytes memory expectedError
    ) internal {
        bytes memory voucher = _signVoucher(buyerKey, t, units);
        bytes memory auth = _signClaim(sellerKey, t, units, deadline);
        if (expectedError.length != 0) vm.expectRevert(expectedError);
        vm.prank(relayer);
        escrow.sellerClaimWithAuthorization(t, units, voucher, deadline, auth);
    }

    /// @notice The relayer withdraws for the buyer with its BuyerWithdraw authorization; expects
    /// `expectedError` when it is not empty.
    function _withdrawWithAuthorization(UsageEscrow.Activation memory t, uint256 deadline, bytes memory expectedError)
        internal
    {
        bytes memory auth = _signWithdraw(buyerKey, t, deadline);
        if (expectedError.length != 0) vm.expectRevert(expectedError);
        vm.prank(relayer);
        escrow.buyerWithdrawWithAuthorization(t, deadline, auth);
    }

    /// @notice Expects the seller's direct claim of `units` with `voucher` to revert with `reason`.
    function _expectClaimRevert(
        UsageEscrow.Activation memory t,
        uint256 units,
        bytes memory voucher,
        bytes memory reason
    ) internal {
        vm.prank(seller);
        vm.expectRevert(reason);
        escrow.sellerClaim(t, units, voucher);
    }

    /// @notice Expects the relayer's sponsored claim with these exact signatures to revert with
    /// `reason` (for tests that tamper with a signature).
    function _expectClaimWithAuthorizationRevert(
        UsageEscrow.Activation memory t,
        uint256 units,
        bytes memory voucher,
        uint256 deadline,
        bytes memory auth,
        bytes memory reason
    ) internal {
        vm.prank(relayer);
        vm.expectRevert(reason);
        escrow.sellerClaimWithAuthorization(t, units, voucher, deadline, auth);
    }

    function _closeAsBuyer(UsageEscrow.Activation memory t) internal {
        vm.prank(buyer);
        escrow.initiateClose(t, 0, "");
    }

    /// @notice The seller closes with no new units: the agreement settles at once.
    function _closeAsSeller(UsageEscrow.Activation memory t) internal {
        vm.prank(seller);
        escrow.initiateClose(t, 0, "");
    }

    function _withdrawAsBuyer(UsageEscrow.Activation memory t) internal {
        vm.prank(buyer);
        escrow.buyerWithdraw(t);
    }

    /// @notice Revert data of a custom error without arguments.
    function _err(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodePacked(selector);
    }

    /// @notice Expects `activate(t)` with the buyer's real signatures to revert with `reason`,
    /// moving no money.
    function _expectActivateRevert(UsageEscrow.Activation memory t, bytes memory reason) internal {
        (bytes memory a, bytes memory f, bytes memory p) = _signAll(t);
        _expectActivateRevert(t, a, f, p, reason);
    }

    /// @notice Expects `activate(t, a, f, p)` sent by the relayer to revert with `reason`, and
    /// checks that neither the buyer's nor the escrow's balance moved.
    function _expectActivateRevert(
        UsageEscrow.Activation memory t,
        bytes memory a,
        bytes memory f,
        bytes memory p,
        bytes memory reason
    ) internal {
        uint256 buyerBefore = usdc.balanceOf(buyer);
        uint256 escrowBefore = usdc.balanceOf(address(escrow));
        vm.prank(relayer);
        vm.expectRevert(reason);
        escrow.activate(t, a, f, p);
        assertEq(usdc.balanceOf(buyer), buyerBefore, "buyer balance moved");
        assertEq(usdc.balanceOf(address(escrow)), escrowBefore, "escrow balance moved");
    }

    /// @notice The escrow's token balance is `deposits` (what it still owes buyers and sellers)
    /// plus the infra fees accrued and not yet withdrawn.
    function _assertEscrowHolds(uint256 deposits) internal view {
        _assertEscrowHolds(deposits, "escrow balance");
    }

    function _assertEscrowHolds(uint256 deposits, string memory message) internal view {
        assertEq(usdc.balanceOf(address(escrow)), deposits + escrow.accruedFees(), message);
    }
}
