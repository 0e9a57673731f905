// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IFiatToken} from "../interfaces/IFiatToken.sol";

/// @notice A test stand-in for Circle's USDC (FiatToken v2.2) on anvil: 6 decimals, EIP-2612
/// permits, EIP-3009 authorizations with Circle's exact typehashes and EIP-712 domain
/// ("USD Coin", "2"), ERC-1271 signers, and a blacklist. Minting is limited to the deployer.
/// @dev The project measures the escrow's gas with this token, so its storage is laid out like
/// FiatToken v2.2's where that decides the cost of a transfer: an account's balance and its
/// blacklist flag live in one word (bit 255 = blacklisted, bits 0..254 = balance). A blacklist
/// check therefore reads the same slot the balance move reads anyway, instead of a second, cold
/// slot. Not modelled: FiatToken's proxy (a cold implementation slot and a delegatecall) and its
/// `paused` flag (one more cold slot per call), which real USDC pays on top of this.
contract MockUSDC is EIP712, IFiatToken, IERC20Metadata {
    /// @notice EIP-2612 permit typehash.
    bytes32 public constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    /// @notice EIP-3009 transferWithAuthorization typehash.
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice EIP-3009 receiveWithAuthorization typehash.
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @notice EIP-3009 cancelAuthorization typehash.
    bytes32 public constant CANCEL_AUTHORIZATION_TYPEHASH =
        keccak256("CancelAuthorization(address authorizer,bytes32 nonce)");

    /// @dev Bit 255 of an account's word: set while the account is blacklisted.
    uint256 private constant BLACKLISTED_BIT = 1 << 255;
    /// @dev Bits 0..254 of an account's word: its balance. Also the cap on the total supply, so
    /// no balance can ever reach the flag bit.
    uint256 private constant BALANCE_MASK = BLACKLISTED_BIT - 1;

    /// @notice The deployer; the only address allowed to mint.
    address public immutable owner;
    /// @notice The deployer; the only address allowed to change the blacklist.
    address public immutable blacklister;

    /// @dev One word per account: the blacklist flag (bit 255) and the balance (the rest).
    mapping(address account => uint256) private _balanceAndBlacklistState;
    mapping(address holder => mapping(address spender => uint256)) private _allowances;
    uint256 private _totalSupply;
    mapping(address account => uint256) private _permitNonces;
    mapping(address authorizer => mapping(bytes32 nonce => bool)) private _authorizationUsed;

    /// @notice Emitted when an authorization nonce is consumed by a transfer.
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    /// @notice Emitted when an authorization nonce is cancelled before use.
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);
    /// @notice Emitted when `account` is blacklisted.
    event BlacklistAdded(address indexed account);
    /// @notice Emitted when `account` is removed from the blacklist.
    event BlacklistRemoved(address indexed account);

    /// @notice The caller is not the owner.
    error OnlyOwner();
    /// @notice The caller is not the blacklister.
    error OnlyBlacklister();
    /// @notice `account` is blacklisted and may not send, receive, approve or authorize.
    error Blacklisted(address account);
    /// @notice `account` holds `balance`, less than the `needed` amount.
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    /// @notice `spender` may spend `allowance` of the holder's tokens, less than the `needed` amount.
    error InsufficientAllowance(address spender, uint256 allowance, uint256 needed);
    /// @notice A transfer, mint or approval names the zero address as a party.
    error ZeroAddress();
    /// @notice Minting would take the total supply past 2^255 - 1 (bit 255 is the blacklist flag).
    error SupplyOverflow();
    /// @notice The permit's deadline has passed.
    error PermitExpired();
    /// @notice `block.timestamp` is not yet after the authorization's `validAfter`.
    error AuthorizationNotYetValid();
    /// @notice `block.timestamp` is not before the authorization's `validBefore`.
    error AuthorizationExpired();
    /// @notice The authorization nonce was already used or cancelled.
    error AuthorizationAlreadyUsed();
    /// @notice The signature is not the signer's (neither ECDSA nor ERC-1271).
    error InvalidSignature();
    /// @notice receiveWithAuthorization was called by someone other than the payee.
    error CallerMustBePayee();

    /// @notice Deploys the token; the deployer becomes owner and blacklister.
    constructor() EIP712("USD Coin", "2") {
        owner = msg.sender;
        blacklister = msg.sender;
    }

    // ------------------------------------------------------------------ admin

    /// @notice Mints `amount` to `to`. Owner only; refused to a blacklisted or zero address.
    function mint(address to, uint256 amount) external {
        if (msg.sender != owner) revert OnlyOwner();
        if (to == address(0)) revert ZeroAddress();
        _update(address(0), to, amount);
    }

    /// @notice Blacklists `account`; its balance is kept but frozen. Blacklister only.
    function blacklist(address account) external {
        if (msg.sender != blacklister) revert OnlyBlacklister();
        _balanceAndBlacklistState[account] |= BLACKLISTED_BIT;
        emit BlacklistAdded(account);
    }

    /// @notice Removes `account` from the blacklist; its balance is untouched. Blacklister only.
    function unBlacklist(address account) external {
        if (msg.sender != blacklister) revert OnlyBlacklister();
        _balanceAndBlacklistState[account] &= BALANCE_MASK;
        emit BlacklistRemoved(account);
    }

    /// @notice True when `account` is blacklisted.
    function isBlacklisted(address account) external view returns (bool) {
        return _balanceAndBlacklistState[account] & BLACKLISTED_BIT != 0;
    }

    // ------------------------------------------------------------------ ERC-20

    /// @notice "USD Coin".
    function name() public pure virtual returns (string memory) {
        return "USD Coin";
    }

    /// @notice "USDC".
    function symbol() public pure virtual returns (string memory) {
        return "USDC";
    }

    /// @notice USDC has 6 decimals.
    function decimals() public pure virtual returns (uint8) {
        return 6;
    }

    /// @notice The tokens in existence, blacklisted accounts' balances included.
    function totalSupply() public view virtual returns (uint256) {
        return _totalSupply;
    }

    /// @notice The balance of `account` (the blacklist flag masked off; a blacklisted account
    /// keeps its balance).
    function balanceOf(address account) public view virtual returns (uint256) {
        return _balanceAndBlacklistState[account] & BALANCE_MASK;
    }

    /// @notice What `spender` may still move from `holder`.
    function allowance(address holder, address spender) public view virtual returns (uint256) {
        return _allowances[holder][spender];
    }

    /// @notice Moves `value` from the caller to `to`; neither may be blacklisted.
    function transfer(address to, uint256 value) public virtual returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    /// @notice Lets `spender` move up to `value` of the caller's tokens; neither may be blacklisted.
    function approve(address spender, uint256 value) public virtual returns (bool) {
        _requireNotBlacklisted(msg.sender);
        _requireNotBlacklisted(spender);
        _approve(msg.sender, spender, value);
        return true;
    }

    /// @notice Moves `value` from `from` to `to` against the caller's allowance. The caller,
    /// `from` and `to` must not be blacklisted.
    /// @dev Like FiatToken v2.2, the allowance is always decremented, `type(uint256).max`
    /// included (there is no "infinite approval"), so every transferFrom pays for writing it.
    function transferFrom(address from, address to, uint256 value) public virtual returns (bool) {
        _requireNotBlacklisted(msg.sender);
        _spendAllowance(from, msg.sender, value);
        _transfer(from, to, value);
        return true;
    }

    // ------------------------------------------------------------------ EIP-2612

    /// @notice The token's EIP-712 domain separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The EIP-2612 nonce of `account`.
    function nonces(address account) external view returns (uint256) {
        return _permitNonces[account];
    }

    /// @notice EIP-2612 permit with a split ECDSA signature.
    function permit(address holder, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
    {
        _permit(holder, spender, value, deadline, abi.encodePacked(r, s, v));
    }

    /// @notice EIP-2612 permit with a `bytes` signature (ECDSA or ERC-1271).
    function permit(address holder, address spender, uint256 value, uint256 deadline, bytes memory signature) external {
        _permit(holder, spender, value, deadline, signature);
    }

    // ------------------------------------------------------------------ EIP-3009

    /// @notice True when `nonce` of `authorizer` has been used or cancelled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool) {
        return _authorizationUsed[authorizer][nonce];
    }

    /// @notice Moves `value` from `from` to `to` under `from`'s signature (split form).
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _authorizedTransfer(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
            from,
            to,
            value,
            validAfter,
            validBefore,
            nonce,
            abi.encodePacked(r, s, v)
        );
    }

    /// @notice Moves `value` from `from` to `to` under `from`'s signature (ECDSA or ERC-1271).
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external {
        _authorizedTransfer(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature
        );
    }

    /// @notice Pulls `value` from `from` to the caller, who must be `to` (split form).
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        if (msg.sender != to) revert CallerMustBePayee();
        _authorizedTransfer(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH,
            from,
            to,
            value,
            validAfter,
            validBefore,
            nonce,
            abi.encodePacked(r, s, v)
        );
    }

    /// @notice Pulls `value` from `from` to the caller, who must be `to` (ECDSA or ERC-1271).
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external {
        if (msg.sender != to) revert CallerMustBePayee();
        _authorizedTransfer(
            RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, signature
        );
    }

    /// @notice Cancels an unused authorization nonce of `authorizer` (split form).
    function cancelAuthorization(address authorizer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external {
        _cancelAuthorization(authorizer, nonce, abi.encodePacked(r, s, v));
    }

    /// @notice Cancels an unused authorization nonce of `authorizer` (ECDSA or ERC-1271).
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) external {
        _cancelAuthorization(authorizer, nonce, signature);
    }

    // ------------------------------------------------------------------ internals

    /// @dev The one place balances and the supply change. `from == 0` mints, `to == 0` burns,
    /// anything else moves `value` from `from` to `to`; a non-zero `from` or `to` must not be
    /// blacklisted, and the flag is read from the very word whose balance is updated, so the
    /// check costs no extra storage read. Subclasses override this to change what a move does
    /// (see FeeOnTransferUSDC and CallbackUSDC).
    function _update(address from, address to, uint256 value) internal virtual {
        if (from == address(0)) {
            uint256 supply = _totalSupply;
            // The supply never exceeds BALANCE_MASK, so the subtraction cannot underflow.
            if (value > BALANCE_MASK - supply) revert SupplyOverflow();
            _totalSupply = supply + value;
        } else {
            uint256 fromWord = _balanceAndBlacklistState[from];
            if (fromWord & BLACKLISTED_BIT != 0) revert Blacklisted(from);
            // The flag is clear, so the word is the balance.
            if (fromWord < value) revert InsufficientBalance(from, fromWord, value);
            unchecked {
                _balanceAndBlacklistState[from] = fromWord - value;
            }
        }

        if (to == address(0)) {
            unchecked {
                // `value` came out of a balance, and balances sum to the supply.
                _totalSupply -= value;
            }
        } else {
            // Read after the debit, so a transfer to oneself sees the debited balance.
            uint256 toWord = _balanceAndBlacklistState[to];
            if (toWord & BLACKLISTED_BIT != 0) revert Blacklisted(to);
            unchecked {
                // A balance plus tokens held elsewhere is at most the supply, itself at most
                // BALANCE_MASK: the sum cannot overflow or reach the flag bit.
                _balanceAndBlacklistState[to] = toWord + value;
            }
        }

        emit Transfer(from, to, value);
    }

    /// @dev A balance move between two real accounts (neither may be the zero address).
    function _transfer(address from, address to, uint256 value) internal virtual {
        if (from == address(0) || to == address(0)) revert ZeroAddress();
        _update(from, to, value);
    }

    /// @dev Sets the allowance and emits Approval. Blacklist checks are the caller's.
    function _approve(address holder, address spender, uint256 value) internal virtual {
        if (holder == address(0) || spender == address(0)) revert ZeroAddress();
        _allowances[holder][spender] = value;
        emit Approval(holder, spender, value);
    }

    /// @dev Takes `value` off `spender`'s allowance from `holder` (always, even at the maximum:
    /// FiatToken v2.2 has no infinite allowance). Emits no Approval, as FiatToken does not.
    function _spendAllowance(address holder, address spender, uint256 value) internal virtual {
        uint256 current = _allowances[holder][spender];
        if (current < value) revert InsufficientAllowance(spender, current, value);
        unchecked {
            _allowances[holder][spender] = current - value;
        }
    }

    function _permit(address holder, address spender, uint256 value, uint256 deadline, bytes memory signature) private {
        _requireNotBlacklisted(holder);
        _requireNotBlacklisted(spender);
        if (block.timestamp > deadline) revert PermitExpired();
        bytes32 structHash =
            keccak256(abi.encode(PERMIT_TYPEHASH, holder, spender, value, _permitNonces[holder]++, deadline));
        _requireValidSignature(holder, structHash, signature);
        _approve(holder, spender, value);
    }

    function _authorizedTransfer(
        bytes32 typehash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) private {
        _requireNotBlacklisted(from);
        _requireNotBlacklisted(to);
        if (block.timestamp <= validAfter) revert AuthorizationNotYetValid();
        if (block.timestamp >= validBefore) revert AuthorizationExpired();
        _requireUnused(from, nonce);
        bytes32 structHash = keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce));
        _requireValidSignature(from, structHash, signature);

        _authorizationUsed[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
        _transfer(from, to, value);
    }

    function _cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) private {
        _requireNotBlacklisted(authorizer);
        _requireUnused(authorizer, nonce);
        bytes32 structHash = keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce));
        _requireValidSignature(authorizer, structHash, signature);

        _authorizationUsed[authorizer][nonce] = true;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    function _requireUnused(address authorizer, bytes32 nonce) private view {
        if (_authorizationUsed[authorizer][nonce]) revert AuthorizationAlreadyUsed();
    }

    function _requireValidSignature(address signer, bytes32 structHash, bytes memory signature) private view {
        bytes32 digest = _hashTypedDataV4(structHash);
        if (!SignatureChecker.isValidSignatureNow(signer, digest, signature)) {
            revert InvalidSignature();
        }
    }

    /// @dev Reverts when `account` is blacklisted. Reads the account's balance word, as
    /// FiatToken v2.2 does, so a later balance move of the same account finds the slot warm.
    function _requireNotBlacklisted(address account) internal view {
        if (_balanceAndBlacklistState[account] & BLACKLISTED_BIT != 0) revert Blacklisted(account);
    }
}
