// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

import {IFiatToken} from "./interfaces/IFiatToken.sol";
import {ISanctionsOracle} from "./interfaces/ISanctionsOracle.sol";
import {SignatureVerifier} from "./SignatureVerifier.sol";

/// @title UsageEscrow
/// @notice Non-custodial escrow for usage agreements between a buyer and a seller, in one token
/// (USDC). The buyer deposits `quantity * unitPrice`; the seller is paid for the units the buyer
/// attests in cumulative usage vouchers; the buyer takes back the rest after the close window.
/// Infra fees are taken at activation and accrue here until they are withdrawn to the fee
/// recipient (contract v3).
/// @dev Agreements are keyed by the EIP-712 digest of their signed `Activation` terms and only a
/// one-word state is stored per agreement: every call passes the terms again and they are checked
/// by re-hashing them into the key. Amounts and recipients come only from signed terms, signed
/// vouchers and storage, and funds go only to the buyer, the seller or the fee recipient. See
/// docs/contract.md for the state machine and each typed struct.
/// @custom:version 3
contract UsageEscrow is EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice The terms the buyer signs. Their EIP-712 digest is the agreement key.
    struct Activation {
        address buyer;
        address seller;
        uint256 unitPrice;
        uint256 quantity;
        uint256 infraFee;
        uint256 activateBy;
        uint256 expiry;
        uint256 closeWindow;
        bytes32 salt;
        bytes32 agreementId;
    }

    /// @notice Lifecycle of an agreement's escrow.
    enum Status {
        None,
        Active,
        Closing,
        Settled
    }

    /// @notice The mutable state of one agreement, packed in one storage word.
    struct Escrow {
        Status status;
        bool buyerWithdrawn;
        uint40 closesAt;
        uint64 claimedUnits;
    }

    /// @notice Why `sellerClaimBatch` skipped a claim (the agreement's state is left unchanged).
    enum SkipReason {
        /// Not active or closing, or nothing beyond what was already claimed.
        NothingToClaim,
        /// The seller's `SellerClaim` authorization is expired or does not verify.
        InvalidAuthorization,
        /// The buyer's voucher does not verify, or its units are above the quantity.
        InvalidVoucher,
        /// The token refused the transfer to the seller (blacklisted, or the token is paused).
        PayoutRefused
    }

    /// @notice Who infra fees go to and how much has accrued for them, in one storage word.
    struct FeeAccount {
        address recipient;
        uint96 accrued;
    }

    /// @notice One sponsored seller claim, as `sellerClaimWithAuthorization` takes it.
    struct SponsoredClaim {
        Activation terms;
        uint256 cumulativeUnits;
        bytes voucherSignature;
        uint256 deadline;
        bytes authorization;
    }

    /// @notice EIP-712 type of the activation terms.
    bytes32 public constant ACTIVATION_TYPEHASH = keccak256(
        "Activation(address buyer,address seller,uint256 unitPrice,uint256 quantity,uint256 infraFee,uint256 activateBy,uint256 expiry,uint256 closeWindow,bytes32 salt,bytes32 agreementId)"
    );
    /// @notice EIP-712 type of a buyer's cumulative usage voucher.
    bytes32 public constant USAGE_VOUCHER_TYPEHASH =
        keccak256("UsageVoucher(bytes32 agreementKey,uint256 cumulativeUnits)");
    /// @notice EIP-712 type of a party's authorization to initiate close on its behalf.
    bytes32 public constant INITIATE_CLOSE_TYPEHASH =
        keccak256("InitiateClose(bytes32 agreementKey,address party,uint256 finalUnits,uint256 deadline)");
    /// @notice EIP-712 type of the seller's authorization to claim on its behalf.
    bytes32 public constant SELLER_CLAIM_TYPEHASH =
        keccak256("SellerClaim(bytes32 agreementKey,uint256 cumulativeUnits,uint256 deadline)");
    /// @notice EIP-712 type of the buyer's authorization to withdraw on its behalf.
    bytes32 public constant BUYER_WITHDRAW_TYPEHASH = keccak256("BuyerWithdraw(bytes32 agreementKey,uint256 deadline)");

    /// @notice The shortest close window terms may ask for: the time a seller has, after the buyer
    /// closes, to get its last claim mined before the buyer can withdraw.
    uint256 public constant MIN_CLOSE_WINDOW = 1 hours;
    /// @notice The longest close window terms may ask for.
    uint256 public constant MAX_CLOSE_WINDOW = 365 days;
    /// @notice The gas an ERC-1271 `isValidSignature` call may use (see SignatureVerifier).
    uint256 public constant ERC1271_GAS_LIMIT = SignatureVerifier.ERC1271_GAS_LIMIT;
    /// @notice The latest expiry terms may ask for (fits the packed timestamps with room to spare).
    uint256 public constant MAX_EXPIRY = type(uint40).max - MAX_CLOSE_WINDOW;

    /// @notice The escrowed token (USDC).
    IFiatToken public immutable token;
    /// @notice The sanctions oracle both parties are checked against at activation.
    ISanctionsOracle public immutable sanctionsOracle;
    mapping(bytes32 agreementKey => Escrow) private _escrows;
    FeeAccount private _fees;

    /// @notice An agreement was funded and is active.
    event EscrowActivated(
        bytes32 indexed agreementKey,
        bytes32 indexed agreementId,
        address indexed buyer,
        address seller,
        uint256 unitPrice,
        uint256 quantity,
        uint256 deposit,
        uint256 infraFee,
        uint256 expiry,
        uint256 closeWindow
    );
    /// @notice A party closed the agreement; the buyer may withdraw from `closesAt`.
    event CloseInitiated(bytes32 indexed agreementKey, address indexed initiator, uint256 closesAt);
    /// @notice The seller was paid `amount` for usage up to `cumulativeUnits`.
    event UsageClaimed(bytes32 indexed agreementKey, address indexed seller, uint256 cumulativeUnits, uint256 amount);
    /// @notice The buyer took back the unused part of the deposit.
    event BuyerWithdrawn(bytes32 indexed agreementKey, address indexed buyer, uint256 amount);
    /// @notice The split is final: `sellerAmount` to the seller in all, `buyerAmount` to the buyer.
    event AgreementSettled(
        bytes32 indexed agreementKey, uint256 claimedUnits, uint256 sellerAmount, uint256 buyerAmount
    );
    /// @notice `sellerClaimBatch` left this claim out, for `reason`; the agreement is unchanged.
    event ClaimSkipped(bytes32 indexed agreementKey, uint256 cumulativeUnits, SkipReason reason);
    /// @notice Accrued infra fees were paid to the fee recipient.
    event FeesWithdrawn(address indexed recipient, uint256 amount);
    /// @notice The fee recipient handed its role (and the fees not yet withdrawn) to `next`.
    event FeeRecipientChanged(address indexed previous, address indexed next);
    /// @notice A call of a non-atomic batch reverted with `reason`; the others went on.
    event BatchCallFailed(uint256 indexed index, bytes reason);

    /// @notice A constructor argument is the zero address.
    error ZeroAddress();
    /// @notice Buyer or seller is the zero address, or they are the same address.
    error InvalidParties();
    /// @notice Quantity is zero or above 2^64 - 1.
    error InvalidQuantity();
    /// @notice Unit price is zero or above 2^128 - 1.
    error InvalidUnitPrice();
    /// @notice Expiry is not in the future, or beyond `MAX_EXPIRY`.
    error InvalidExpiry();
    /// @notice Close window below `MIN_CLOSE_WINDOW` or above `MAX_CLOSE_WINDOW`.
    error InvalidCloseWindow();
    /// @notice Infra fee above 2^96 - 1.
    error InvalidInfraFee();
    /// @notice `block.timestamp` is at or past the terms' `activateBy`.
    error ActivationExpired(uint256 activateBy);
    /// @notice The agreement key already has an escrow.
    error AlreadyActivated(bytes32 agreementKey);
    /// @notice A signature does not verify for the party that must have signed it.
    error InvalidSignature();
    /// @notice The oracle lists `account`.
    error SanctionedAddress(address account);
    /// @notice The oracle reverted or answered nothing; screening fails closed.
    error SanctionsOracleFailed();
    /// @notice The escrow received other than deposit plus fee (a fee-on-transfer token, say).
    error DepositMismatch(uint256 expected, uint256 received);
    /// @notice No fee authorization was given and the buyer's allowance does not cover the fee.
    error InfraFeeNotAuthorized();
    /// @notice Only the fee recipient may do this.
    error NotFeeRecipient(address account);
    /// @notice There are no accrued fees to withdraw.
    error NoFees();
    /// @notice The action is not possible in the agreement's current status.
    error InvalidStatus(Status status);
    /// @notice The caller (or signer) is not the party the action belongs to.
    error NotParty(address account);
    /// @notice The authorization's deadline has passed.
    error AuthorizationExpired(uint256 deadline);
    /// @notice Units above the agreement's quantity.
    error UnitsExceedQuantity(uint256 units, uint256 quantity);
    /// @notice Nothing beyond what was already claimed.
    error NothingToClaim(uint256 units, uint256 claimedUnits);
    /// @notice The buyer may withdraw only from `opensAt`.
    error WithdrawNotOpen(uint256 opensAt);
    /// @notice The buyer's part was already withdrawn.
    error AlreadyWithdrawn();

    /// @param token_ The escrowed token (USDC: EIP-3009 with `bytes` signatures).
    /// @param sanctionsOracle_ A Chainalysis-interface sanctions oracle.
    /// @param feeRecipient_ The address accrued infra fees are withdrawn to (it may hand the role on).
    constructor(IFiatToken token_, ISanctionsOracle sanctionsOracle_, address feeRecipient_)
        EIP712("Pactum UsageEscrow", "2")
    {
        if (address(token_) == address(0) || address(sanctionsOracle_) == address(0) || feeRecipient_ == address(0)) {
            revert ZeroAddress();
        }
        token = token_;
        sanctionsOracle = sanctionsOracle_;
        _fees.recipient = feeRecipient_;
    }

    // ---------------------------------------------------------------- activation

    /// @notice Funds and activates an agreement. Anyone may submit it (Pactum's relayer does).
    /// @param terms The terms the buyer signed.
    /// @param buyerSignature The buyer's signature over the agreement key (ECDSA or ERC-1271).
    /// @param fundingSignature The buyer's USDC `ReceiveWithAuthorization` to this contract for
    /// exactly the deposit, `validAfter` 0, `validBefore` `terms.activateBy`, nonce the agreement key.
    /// @param feeSignature With a non-zero `terms.infraFee`: the buyer's USDC
    /// `ReceiveWithAuthorization` to this contract for exactly the fee, `validAfter` 0,
    /// `validBefore` `terms.activateBy`, nonce `infraFeeNonce(key)`; empty to take the fee from an
    /// existing allowance instead.
    /// @return key The agreement key.
    function activate(
        Activation calldata terms,
        bytes calldata buyerSignature,
        bytes calldata fundingSignature,
        bytes calldata feeSignature
    ) external nonReentrant returns (bytes32 key) {
        if (block.timestamp >= terms.activateBy) {
            revert ActivationExpired(terms.activateBy);
        }
        _checkTerms(terms);
        key = agreementKey(terms);
        if (_escrows[key].status != Status.None) revert AlreadyActivated(key);
        if (!SignatureVerifier.isValidNow(terms.buyer, key, buyerSignature)) {
            revert InvalidSignature();
        }
        _requireNotSanctioned(terms.buyer);
        _requireNotSanctioned(terms.seller);

        // State first: a token that calls back finds the agreement already active.
        _escrows[key].status = Status.Active;

        uint256 deposit = terms.quantity * terms.unitPrice;
        uint256 balanceBefore = token.balanceOf(address(this));
        token.receiveWithAuthorization(terms.buyer, address(this), deposit, 0, terms.activateBy, key, fundingSignature);
        if (terms.infraFee != 0) _collectInfraFee(terms, key, feeSignature);
        _requireReceived(balanceBefore, deposit + terms.infraFee);

        _emitActivated(key, terms, deposit);
    }

    // ---------------------------------------------------------------- close

    /// @notice Closes the agreement from the caller's own wallet (buyer or seller).
    /// @dev A buyer starts the close window. A seller's close is final: the seller is paid up to
    /// `finalUnits` (with the buyer's voucher for it) and the buyer may withdraw the rest at once.
    function initiateClose(Activation calldata terms, uint256 finalUnits, bytes calldata voucherSignature)
        external
        nonReentrant
    {
        _initiateClose(terms, agreementKey(terms), msg.sender, finalUnits, voucherSignature);
    }

    /// @notice `initiateClose` on behalf of `party`, under its `InitiateClose` authorization.
    function initiateCloseWithAuthorization(
        Activation calldata terms,
        address party,
        uint256 finalUnits,
        bytes calldata voucherSignature,
        uint256 deadline,
        bytes calldata authorization
    ) external nonReentrant {
        bytes32 key = agreementKey(terms);
        _requireAuthorization(
            party,
            keccak256(abi.encode(INITIATE_CLOSE_TYPEHASH, key, party, finalUnits, deadline)),
            deadline,
            authorization
        );
        _initiateClose(terms, key, party, finalUnits, voucherSignature);
    }

    // ---------------------------------------------------------------- seller claim

    /// @notice Pays the seller, from its own wallet, for usage up to `cumulativeUnits`.
    /// @param voucherSignature The buyer's `UsageVoucher` signature for `cumulativeUnits`.
    function sellerClaim(Activation calldata terms, uint256 cumulativeUnits, bytes calldata voucherSignature)
        external
        nonReentrant
    {
        if (msg.sender != terms.seller) revert NotParty(msg.sender);
        _claim(terms, agreementKey(terms), cumulativeUnits, voucherSignature);
    }

    /// @notice `sellerClaim` on the seller's behalf, under its `SellerClaim` authorization.
    function sellerClaimWithAuthorization(
        Activation calldata terms,
        uint256 cumulativeUnits,
        bytes calldata voucherSignature,
        uint256 deadline,
        bytes calldata authorization
    ) external nonReentrant {
        bytes32 key = agreementKey(terms);
        _requireAuthorization(
            terms.seller,
            keccak256(abi.encode(SELLER_CLAIM_TYPEHASH, key, cumulativeUnits, deadline)),
            deadline,
            authorization
        );
        _claim(terms, key, cumulativeUnits, voucherSignature);
    }

    // ---------------------------------------------------------------- buyer withdraw

    /// @notice Returns the unused deposit to the buyer, from its own wallet, once withdraw is open.
    function buyerWithdraw(Activation calldata terms) external nonReentrant {
        if (msg.sender != terms.buyer) revert NotParty(msg.sender);
        _withdraw(terms, agreementKey(terms));
    }

    /// @notice `buyerWithdraw` on the buyer's behalf, under its `BuyerWithdraw` authorization.
    function buyerWithdrawWithAuthorization(Activation calldata terms, uint256 deadline, bytes calldata authorization)
        external
        nonReentrant
    {
        bytes32 key = agreementKey(terms);
        _requireAuthorization(
            terms.buyer, keccak256(abi.encode(BUYER_WITHDRAW_TYPEHASH, key, deadline)), deadline, authorization
        );
        _withdraw(terms, key);
    }

    // ---------------------------------------------------------------- batch

    /// @notice Many sponsored seller claims in one transaction, each under its seller's
    /// `SellerClaim` authorization and its buyer's voucher, as `sellerClaimWithAuthorization`.
    /// Consecutive claims of one seller are paid in a single transfer.
    /// @dev Every claim stands on its own: one that cannot be paid (moved on since it was queued,
    /// a signature that does not verify, a transfer the token refuses) is skipped with
    /// `ClaimSkipped` and its agreement left as it was, and the others are paid. So nobody (a
    /// blacklisted seller, a smart wallet whose check fails on-chain, a party acting directly)
    /// can sink the batch. A refused transfer skips every claim of that payee's run.
    function sellerClaimBatch(SponsoredClaim[] calldata claims) external nonReentrant {
        uint256 n = claims.length;
        bytes32[] memory keys = new bytes32[](n);
        Escrow[] memory before = new Escrow[](n);
        address payee;
        uint256 owed;
        uint256 runStart;
        for (uint256 i; i < n; ++i) {
            SponsoredClaim calldata c = claims[i];
            bytes32 key = agreementKey(c.terms);
            (bool claimable, SkipReason reason, Escrow memory e) = _batchClaimable(c, key);
            if (!claimable) {
                emit ClaimSkipped(key, c.cumulativeUnits, reason);
                continue;
            }
            if (c.terms.seller != payee) {
                _payRun(claims, keys, before, runStart, i, payee, owed);
                (payee, owed, runStart) = (c.terms.seller, 0, i);
            }
            (keys[i], before[i]) = (key, e);
            owed += _writeClaim(c.terms, key, e, c.cumulativeUnits);
        }
        _payRun(claims, keys, before, runStart, n, payee, owed);
    }

    /// @notice Runs several calls of this contract in one transaction, so a relayer pays the
    /// transaction overhead once. With `atomic`, the first failure reverts everything; without it,
    /// a failed call emits `BatchCallFailed` and the rest go on.
    /// @dev Each call is a delegatecall to this contract, so `msg.sender` stays the batch's sender:
    /// direct-path calls in a batch act for that sender only, and authorized calls need their
    /// party's signature as always. Every entry point keeps its own reentrancy guard.
    /// @return succeeded Whether each call succeeded.
    function batch(bytes[] calldata calls, bool atomic) external returns (bool[] memory succeeded) {
        succeeded = new bool[](calls.length);
        for (uint256 i; i < calls.length; ++i) {
            (bool ok, bytes memory result) = address(this).delegatecall(calls[i]);
            if (!ok) {
                if (atomic) {
                    assembly ("memory-safe") {
                        revert(add(result, 32), mload(result))
                    }
                }
                emit BatchCallFailed(i, result);
            }
            succeeded[i] = ok;
        }
    }

    // ---------------------------------------------------------------- fees

    /// @notice Pays every accrued infra fee to the fee recipient. Anyone may call it; the fees
    /// only ever go to the recipient. A refused transfer (a blacklisted recipient) reverts and the
    /// fees stay accrued; activations go on regardless.
    function withdrawFees() external nonReentrant {
        FeeAccount memory f = _fees;
        if (f.accrued == 0) revert NoFees();
        _fees.accrued = 0;
        emit FeesWithdrawn(f.recipient, f.accrued);
        _pay(f.recipient, f.accrued);
    }

    /// @notice Hands the fee recipient's role, and the fees not yet withdrawn, to `next`. Only the
    /// current recipient may: there is no owner or admin. A recipient the token blacklists can
    /// still call this and move its fees to an address the token pays.
    function setFeeRecipient(address next) external {
        address previous = _fees.recipient;
        if (msg.sender != previous) revert NotFeeRecipient(msg.sender);
        if (next == address(0)) revert ZeroAddress();
        _fees.recipient = next;
        emit FeeRecipientChanged(previous, next);
    }

    /// @notice Where accrued infra fees are withdrawn to.
    function feeRecipient() external view returns (address) {
        return _fees.recipient;
    }

    /// @notice Infra fees taken at activation and not yet withdrawn.
    function accruedFees() external view returns (uint256) {
        return _fees.accrued;
    }

    // ---------------------------------------------------------------- views

    /// @notice The nonce of the buyer's infra-fee `ReceiveWithAuthorization` for agreement `key`:
    /// derived from the key, so it is unordered (any number of pending activations of one buyer
    /// work in any order) and no other authorization the buyer signs can use it up.
    function infraFeeNonce(bytes32 key) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(key, "infra-fee"));
    }

    /// @notice The agreement key of `terms`: the EIP-712 digest the buyer signs.
    function agreementKey(Activation calldata terms) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ACTIVATION_TYPEHASH, terms)));
    }

    /// @notice The stored state of an agreement (all zero when it was never activated).
    function escrowOf(bytes32 key) external view returns (Escrow memory) {
        return _escrows[key];
    }

    /// @notice When the buyer may withdraw: 0 when already open for a settled agreement,
    /// `type(uint256).max` when not activated or already withdrawn.
    function withdrawOpensAt(Activation calldata terms) external view returns (uint256) {
        Escrow memory e = _escrows[agreementKey(terms)];
        if (e.status == Status.None || e.buyerWithdrawn) return type(uint256).max;
        return _withdrawOpensAt(terms, e);
    }

    /// @notice The digest the buyer signs for a `UsageVoucher`.
    function usageVoucherDigest(bytes32 key, uint256 cumulativeUnits) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(USAGE_VOUCHER_TYPEHASH, key, cumulativeUnits)));
    }

    /// @notice The digest a party signs for an `InitiateClose` authorization.
    function initiateCloseDigest(bytes32 key, address party, uint256 finalUnits, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(INITIATE_CLOSE_TYPEHASH, key, party, finalUnits, deadline)));
    }

    /// @notice The digest the seller signs for a `SellerClaim` authorization.
    function sellerClaimDigest(bytes32 key, uint256 cumulativeUnits, uint256 deadline) external view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(SELLER_CLAIM_TYPEHASH, key, cumulativeUnits, deadline)));
    }

    /// @notice The digest the buyer signs for a `BuyerWithdraw` authorization.
    function buyerWithdrawDigest(bytes32 key, uint256 deadline) external view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(BUYER_WITHDRAW_TYPEHASH, key, deadline)));
    }

    /// @notice The EIP-712 domain separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internals

    function _initiateClose(
        Activation calldata terms,
        bytes32 key,
        address party,
        uint256 finalUnits,
        bytes calldata voucherSignature
    ) private {
        Escrow memory e = _escrows[key];
        if (party == terms.buyer) {
            if (e.status != Status.Active) revert InvalidStatus(e.status);
            // The window runs from the close, or from expiry when the buyer closes after it, so
            // `closesAt` is exactly when withdraw opens.
            uint256 from = block.timestamp < terms.expiry ? block.timestamp : terms.expiry;
            // Safe: expiry is at most MAX_EXPIRY, so this is below 2^40 (_checkTerms).
            // forge-lint: disable-next-line(unsafe-typecast)
            uint40 closesAt = uint40(from + terms.closeWindow);
            _escrows[key] = Escrow(Status.Closing, false, closesAt, e.claimedUnits);
            emit CloseInitiated(key, party, closesAt);
        } else if (party == terms.seller) {
            if (e.status != Status.Active && e.status != Status.Closing) {
                revert InvalidStatus(e.status);
            }
            uint256 paidUnits;
            if (finalUnits > e.claimedUnits) {
                _checkVoucher(terms, key, finalUnits, voucherSignature);
                paidUnits = finalUnits - e.claimedUnits;
                // Safe: units are at most terms.quantity, itself at most 2^64 - 1 (_checkTerms).
                // forge-lint: disable-next-line(unsafe-typecast)
                e.claimedUnits = uint64(finalUnits);
            }
            uint256 refund = (terms.quantity - e.claimedUnits) * terms.unitPrice;
            // Nothing left for the buyer means there is nothing to withdraw either.
            // Safe: timestamps stay below 2^40 for some 30,000 years.
            // forge-lint: disable-next-line(unsafe-typecast)
            uint40 closedAt = uint40(block.timestamp);
            _escrows[key] = Escrow(Status.Settled, refund == 0, closedAt, e.claimedUnits);
            emit CloseInitiated(key, party, block.timestamp);
            if (paidUnits != 0) {
                uint256 amount = paidUnits * terms.unitPrice;
                emit UsageClaimed(key, terms.seller, e.claimedUnits, amount);
                _pay(terms.seller, amount);
            }
            emit AgreementSettled(key, e.claimedUnits, e.claimedUnits * terms.unitPrice, refund);
        } else {
            revert NotParty(party);
        }
    }

    function _claim(Activation calldata terms, bytes32 key, uint256 cumulativeUnits, bytes calldata voucherSignature)
        private
    {
        Escrow memory e = _escrows[key];
        if (e.status != Status.Active && e.status != Status.Closing) revert InvalidStatus(e.status);
        if (cumulativeUnits <= e.claimedUnits) revert NothingToClaim(cumulativeUnits, e.claimedUnits);
        _checkVoucher(terms, key, cumulativeUnits, voucherSignature);
        uint256 amount = _writeClaim(terms, key, e, cumulativeUnits);
        _emitClaimed(terms, key, cumulativeUnits, amount);
        _pay(terms.seller, amount);
    }

    /// @dev Moves `claimedUnits` forward to `cumulativeUnits` (checked by the caller) and returns
    /// what the seller is owed for it; reaching `quantity` settles the agreement, and the buyer
    /// has nothing left to withdraw. The caller emits the events.
    function _writeClaim(Activation calldata terms, bytes32 key, Escrow memory e, uint256 cumulativeUnits)
        private
        returns (uint256 amount)
    {
        amount = (cumulativeUnits - e.claimedUnits) * terms.unitPrice;
        // Safe: units are at most terms.quantity, itself at most 2^64 - 1 (_checkTerms).
        // forge-lint: disable-next-line(unsafe-typecast)
        uint64 units = uint64(cumulativeUnits);
        if (cumulativeUnits == terms.quantity) {
            _escrows[key] = Escrow(Status.Settled, true, e.closesAt, units);
        } else {
            _escrows[key].claimedUnits = units;
        }
    }

    /// @dev The events of a claim `_writeClaim` recorded: `UsageClaimed`, and `AgreementSettled`
    /// when it used the whole quantity.
    function _emitClaimed(Activation calldata terms, bytes32 key, uint256 cumulativeUnits, uint256 amount) private {
        emit UsageClaimed(key, terms.seller, cumulativeUnits, amount);
        if (cumulativeUnits == terms.quantity) {
            emit AgreementSettled(key, cumulativeUnits, cumulativeUnits * terms.unitPrice, 0);
        }
    }

    /// @dev Whether a batched claim can be paid, why not, and the agreement's state before it.
    /// Mirrors `sellerClaimWithAuthorization`'s checks without reverting.
    function _batchClaimable(SponsoredClaim calldata c, bytes32 key)
        private
        view
        returns (bool, SkipReason, Escrow memory e)
    {
        e = _escrows[key];
        if ((e.status != Status.Active && e.status != Status.Closing) || c.cumulativeUnits <= e.claimedUnits) {
            return (false, SkipReason.NothingToClaim, e);
        }
        bytes32 claimHash = keccak256(abi.encode(SELLER_CLAIM_TYPEHASH, key, c.cumulativeUnits, c.deadline));
        if (
            block.timestamp > c.deadline
                || !SignatureVerifier.isValidNow(c.terms.seller, _hashTypedDataV4(claimHash), c.authorization)
        ) {
            return (false, SkipReason.InvalidAuthorization, e);
        }
        if (
            c.cumulativeUnits > c.terms.quantity
                || !SignatureVerifier.isValidNow(
                    c.terms.buyer, usageVoucherDigest(key, c.cumulativeUnits), c.voucherSignature
                )
        ) {
            return (false, SkipReason.InvalidVoucher, e);
        }
        return (true, SkipReason.NothingToClaim, e);
    }

    /// @dev Pays `owed` to `payee` for the claims `keys[from..to)` recorded (a zero key is a
    /// skipped claim). When the token refuses, puts those agreements back as they were and skips
    /// their claims instead, so the seller can claim them later.
    function _payRun(
        SponsoredClaim[] calldata claims,
        bytes32[] memory keys,
        Escrow[] memory before,
        uint256 from,
        uint256 to,
        address payee,
        uint256 owed
    ) private {
        if (owed == 0) return;
        bool paid = _tryPay(payee, owed);
        // Backwards, so a key claimed twice in the run ends at its state before the first.
        for (uint256 i = paid ? from : to; i > from;) {
            --i;
            bytes32 key = keys[i];
            if (key != bytes32(0)) _escrows[key] = before[i];
        }
        for (uint256 i = from; i < to; ++i) {
            bytes32 key = keys[i];
            if (key == bytes32(0)) continue;
            SponsoredClaim calldata c = claims[i];
            if (paid) {
                _emitClaimed(
                    c.terms, key, c.cumulativeUnits, (c.cumulativeUnits - before[i].claimedUnits) * c.terms.unitPrice
                );
            } else {
                emit ClaimSkipped(key, c.cumulativeUnits, SkipReason.PayoutRefused);
            }
        }
    }

    function _withdraw(Activation calldata terms, bytes32 key) private {
        Escrow memory e = _escrows[key];
        if (e.status == Status.None) revert InvalidStatus(e.status);
        if (e.buyerWithdrawn) revert AlreadyWithdrawn();
        uint256 opensAt = _withdrawOpensAt(terms, e);
        if (block.timestamp < opensAt) revert WithdrawNotOpen(opensAt);

        uint256 amount = (terms.quantity - e.claimedUnits) * terms.unitPrice;
        _escrows[key] = Escrow(Status.Settled, true, e.closesAt, e.claimedUnits);
        emit BuyerWithdrawn(key, terms.buyer, amount);
        if (e.status != Status.Settled) {
            emit AgreementSettled(key, e.claimedUnits, e.claimedUnits * terms.unitPrice, amount);
        }
        if (amount != 0) _pay(terms.buyer, amount);
    }

    /// @dev A settled agreement is open at once; a closing one at `closesAt` (never later than
    /// expiry plus the close window); an active one at expiry plus the close window.
    function _withdrawOpensAt(Activation calldata terms, Escrow memory e) private pure returns (uint256) {
        if (e.status == Status.Settled) return 0;
        if (e.status == Status.Closing) return e.closesAt;
        return terms.expiry + terms.closeWindow;
    }

    function _pay(address to, uint256 amount) private {
        IERC20(address(token)).safeTransfer(to, amount);
    }

    /// @dev `_pay` that reports a refused transfer instead of reverting.
    function _tryPay(address to, uint256 amount) private returns (bool) {
        return IERC20(address(token)).trySafeTransfer(to, amount);
    }

    function _checkVoucher(
        Activation calldata terms,
        bytes32 key,
        uint256 cumulativeUnits,
        bytes calldata voucherSignature
    ) private view {
        if (cumulativeUnits > terms.quantity) {
            revert UnitsExceedQuantity(cumulativeUnits, terms.quantity);
        }
        bytes32 digest = usageVoucherDigest(key, cumulativeUnits);
        if (!SignatureVerifier.isValidNow(terms.buyer, digest, voucherSignature)) {
            revert InvalidSignature();
        }
    }

    function _requireAuthorization(address party, bytes32 structHash, uint256 deadline, bytes calldata authorization)
        private
        view
    {
        if (block.timestamp > deadline) revert AuthorizationExpired(deadline);
        if (!SignatureVerifier.isValidNow(party, _hashTypedDataV4(structHash), authorization)) {
            revert InvalidSignature();
        }
    }

    /// @dev Takes the infra fee into the escrow, where it accrues for the fee recipient. Only this
    /// contract can use a `ReceiveWithAuthorization` made out to it, so nobody can front-run it;
    /// its nonce is the agreement's own, so no other authorization can use it up.
    function _collectInfraFee(Activation calldata terms, bytes32 key, bytes calldata feeSignature) private {
        if (feeSignature.length != 0) {
            token.receiveWithAuthorization(
                terms.buyer, address(this), terms.infraFee, 0, terms.activateBy, infraFeeNonce(key), feeSignature
            );
        } else {
            if (token.allowance(terms.buyer, address(this)) < terms.infraFee) revert InfraFeeNotAuthorized();
            IERC20(address(token)).safeTransferFrom(terms.buyer, address(this), terms.infraFee);
        }
        // Safe: the fee is at most 2^96 - 1 (_checkTerms), and the sum is checked here.
        // forge-lint: disable-next-line(unsafe-typecast)
        _fees.accrued = _fees.accrued + uint96(terms.infraFee);
    }

    /// @dev Refuses a token that credited other than `expected` since `balanceBefore`.
    function _requireReceived(uint256 balanceBefore, uint256 expected) private view {
        uint256 received = token.balanceOf(address(this)) - balanceBefore;
        if (received != expected) revert DepositMismatch(expected, received);
    }

    function _checkTerms(Activation calldata terms) private view {
        if (terms.buyer == address(0) || terms.seller == address(0) || terms.buyer == terms.seller) {
            revert InvalidParties();
        }
        if (terms.quantity == 0 || terms.quantity > type(uint64).max) revert InvalidQuantity();
        if (terms.unitPrice == 0 || terms.unitPrice > type(uint128).max) revert InvalidUnitPrice();
        if (terms.expiry <= block.timestamp || terms.expiry > MAX_EXPIRY) revert InvalidExpiry();
        if (terms.closeWindow < MIN_CLOSE_WINDOW || terms.closeWindow > MAX_CLOSE_WINDOW) {
            revert InvalidCloseWindow();
        }
        if (terms.infraFee > type(uint96).max) revert InvalidInfraFee();
    }

    function _emitActivated(bytes32 key, Activation calldata terms, uint256 deposit) private {
        emit EscrowActivated(
            key,
            terms.agreementId,
            terms.buyer,
            terms.seller,
            terms.unitPrice,
            terms.quantity,
            deposit,
            terms.infraFee,
            terms.expiry,
            terms.closeWindow
        );
    }

    function _requireNotSanctioned(address account) private view {
        (bool ok, bytes memory result) =
            address(sanctionsOracle).staticcall(abi.encodeCall(ISanctionsOracle.isSanctioned, (account)));
        if (!ok || result.length < 32) revert SanctionsOracleFailed();
        // Any non-zero word counts as listed, so a malformed answer fails closed too.
        if (abi.decode(result, (uint256)) != 0) revert SanctionedAddress(account);
    }
}
