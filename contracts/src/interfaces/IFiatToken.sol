// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice The parts of USDC (FiatToken v2.2) the escrow uses: EIP-3009 authorizations and EIP-2612
/// permits, in the `bytes signature` form that accepts both ECDSA and ERC-1271 signatures.
interface IFiatToken is IERC20 {
    /// @notice Pulls `value` from `from` to the caller, who must be `to`, under `from`'s signature.
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external;

    /// @notice Moves `value` from `from` to `to` under `from`'s signature; anyone may submit it.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes memory signature
    ) external;

    /// @notice Cancels an unused authorization nonce of `authorizer`.
    function cancelAuthorization(address authorizer, bytes32 nonce, bytes memory signature) external;

    /// @notice True when `nonce` of `authorizer` has been used or cancelled.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);

    /// @notice EIP-2612 permit with a `bytes` signature (ECDSA or ERC-1271).
    function permit(address owner, address spender, uint256 value, uint256 deadline, bytes memory signature) external;

    /// @notice EIP-2612 permit with a split ECDSA signature.
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external;

    /// @notice The EIP-2612 nonce of `owner`.
    function nonces(address owner) external view returns (uint256);

    /// @notice The token's EIP-712 domain separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32);
}
