// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "./Test.sol";
import {UsageEscrow} from "../../src/UsageEscrow.sol";
import {IFiatToken} from "../../src/interfaces/IFiatToken.sol";
import {ISanctionsOracle} from "../../src/interfaces/ISanctionsOracle.sol";
import {MockUSDC} from "../../src/mocks/MockUSDC.sol";
import {MockSanctionsOracle} from "../../src/mocks/MockSanctionsOracle.sol";

/// @notice Deploys the escrow against mock USDC and a mock oracle, and signs every typed struct
/// with real keys (vm.sign), so tests read as the flow a buyer and a seller go through.
abstract contract EscrowFixture is Test {
    bytes32 internal constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 internal constant PERMIT_TYPEHASH = keccak256(
        "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
    );

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
        usdc = new MockUSDC();
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

    function _typedDigest(bytes32 domainSeparator, bytes32 structHash)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }

    function _keyOf(UsageEscrow.Activation memory t) internal view returns (bytes32) {
        return escrow.agreementKey(t);
    }

    function _signActivation(uint256 key, UsageEscrow.Activation memory t)
        internal
        returns (bytes memory)
    {
        return _sign(key, _keyOf(t));
    }

    /// @notice The buyer's USDC ReceiveWithAuthorization as the escrow asks for it.
    function _signFunding(uint256 key, UsageEscrow.Activation memory t)
        internal
        returns (bytes memory)
    {
        return _signFundingFor(key, address(usdc), address(escrow), t);
    }

    function _signFundingFor(
        uint256 key,
        address token,
        address escrowAddress,
        UsageEscrow.Activation memory t
    ) internal returns (bytes memory) {
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

    /// @notice The buyer's EIP-2612 permit of the infra fee to the escrow.
    function _signFeePermit(uint256 key, UsageEscrow.Activation memory t)
        internal
        returns (bytes memory)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                PERMIT_TYPEHASH, t.buyer, address(escrow), t.infraFee, usdc.nonces(t.buyer), t.activateBy
            )
        );
        return _sign(key, _typedDigest(usdc.DOMAIN_SEPARATOR(), structHash));
    }

    function _signVoucher(uint256 key, UsageEscrow.Activation memory t, uint256 units)
        internal
        returns (bytes memory)
    {
        return _sign(key, escrow.usageVoucherDigest(_keyOf(t), units));
    }

    function _signClaim(uint256 key, UsageEscrow.Activation memory t, uint256 units, uint256 deadline)
        internal
        returns (bytes memory)
    {
        return _sign(key, escrow.sellerClaimDigest(_keyOf(t), units, deadline));
    }

    function _signWithdraw(uint256 key, UsageEscrow.Activation memory t, uint256 deadline)
        internal
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
    ) internal returns (bytes memory) {
        return _sign(key, escrow.initiateCloseDigest(_keyOf(t), party, finalUnits, deadline));
    }

    // ---------------------------------------------------------------- flows

    /// @notice Activates `t` with all three buyer signatures, sent by the relayer.
    function _activate(UsageEscrow.Activation memory t) internal returns (bytes32 key) {
        bytes memory activationSig = _signActivation(buyerKey, t);
        bytes memory fundingSig = _signFunding(buyerKey, t);
        bytes memory feeSig = t.infraFee == 0 ? bytes("") : _signFeePermit(buyerKey, t);
        vm.prank(relayer);
        key = escrow.activate(t, activationSig, fundingSig, feeSig);
    }

    function _status(bytes32 key) internal view returns (UsageEscrow.Status) {
        return escrow.escrowOf(key).status;
    }
}
