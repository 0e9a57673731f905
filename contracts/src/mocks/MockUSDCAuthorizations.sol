// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFiatToken} from "../interfaces/IFiatToken.sol";
import {MockSignatureChecker} from "./MockSignatureChecker.sol";
import {MockUSDCRoles} from "./MockUSDCRoles.sol";

/// @notice MockUSDC's signed actions: EIP-2612 permits and EIP-3009 authorizations with Circle's
/// typehashes and EIP-712 domain (the token's name, version "2", the chain, the proxy's address).
/// @dev Paid for as on USDC: each action reads the pause flag and its parties' blacklist state;
/// the domain separator is built afresh from the stored name on every signature; the signature
/// is checked by DELEGATECALL into a separately deployed MockSignatureChecker, as USDC calls its
/// linked SignatureChecker library; permit nonces are one ordered counter per owner and EIP-3009
/// nonces one flag each. MockUSDC supplies the name, the balance moves and the blacklist.
abstract contract MockUSDCAuthorizations is MockUSDCRoles, IFiatToken {
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

    /// @dev The EIP-712 domain type; the domain's version is always "2", as USDC v2's.
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// @dev The signature checker this implementation deployed; an immutable, so it costs no
    /// storage read, as a linked library's address does not.
    address private immutable _signatureChecker = address(new MockSignatureChecker());

    mapping(address account => uint256) private _permitNonces;
    mapping(address authorizer => mapping(bytes32 nonce => bool)) private _authorizationUsed;

    /// @notice Emitted when an authorization nonce is consumed by a transfer.
    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);
    /// @notice Emitted when an authorization nonce is cancelled before use.
    event AuthorizationCanceled(address indexed authorizer, bytes32 indexed nonce);

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

    /// @dev Reverts when `account` is blacklisted. Reads the account's balance word, so a later
    /// balance move of the same account finds the slot warm.
    modifier notBlacklisted(address account) {
        _requireNotBlacklisted(account);
        _;
    }

    /// @notice The token's name, which is also its EIP-712 domain's.
    function name() public view virtual returns (string memory);

    // ------------------------------------------------------------------ EIP-2612

    /// @notice The token's EIP-712 domain separator (name, version "2", chain id, the proxy).
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparator();
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

    function _permit(address holder, address spender, uint256 value, uint256 deadline, bytes memory signature)
        private
        whenNotPaused
        notBlacklisted(holder)
        notBlacklisted(spender)
    {
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
    ) private whenNotPaused notBlacklisted(from) notBlacklisted(to) {
        if (typehash == RECEIVE_WITH_AUTHORIZATION_TYPEHASH && msg.sender != to) {
            revert CallerMustBePayee();
        }
        if (block.timestamp <= validAfter) revert AuthorizationNotYetValid();
        if (block.timestamp >= validBefore) revert AuthorizationExpired();
        _requireUnused(from, nonce);
        bytes32 structHash = keccak256(abi.encode(typehash, from, to, value, validAfter, validBefore, nonce));
        _requireValidSignature(from, structHash, signature);

        _authorizationUsed[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
        _transfer(from, to, value);
    }

    function _cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature)
        private
        whenNotPaused
        notBlacklisted(authorizer)
    {
        _requireUnused(authorizer, nonce);
        bytes32 structHash = keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce));
        _requireValidSignature(authorizer, structHash, signature);

        _authorizationUsed[authorizer][nonce] = true;
        emit AuthorizationCanceled(authorizer, nonce);
    }

    function _requireUnused(address authorizer, bytes32 nonce) private view {
        if (_authorizationUsed[authorizer][nonce]) revert AuthorizationAlreadyUsed();
    }

    /// @dev A DELEGATECALL, as into a linked library: the checker runs in the token's context.
    function _requireValidSignature(address signer, bytes32 structHash, bytes memory signature) private {
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", _domainSeparator(), structHash));
        (bool ok, bytes memory result) = _signatureChecker.delegatecall(
            abi.encodeCall(MockSignatureChecker.isValidSignatureNow, (signer, digest, signature))
        );
        if (!ok || result.length != 32 || abi.decode(result, (uint256)) != 1) revert InvalidSignature();
    }

    /// @dev Built on every call from the name in storage (a cold slot on the first signature of a
    /// transaction), never cached, as USDC does; `address(this)` is the proxy.
    function _domainSeparator() private view returns (bytes32) {
        return
            keccak256(
                abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(name())), keccak256("2"), block.chainid, address(this))
            );
    }

    /// @dev Sets `spender`'s allowance from `holder` (a permit's effect).
    function _approve(address holder, address spender, uint256 value) internal virtual;

    /// @dev Moves `value` from `from` to `to` (an authorization's effect).
    function _transfer(address from, address to, uint256 value) internal virtual;

    /// @dev Reverts when `account` is blacklisted.
    function _requireNotBlacklisted(address account) internal view virtual;
}
