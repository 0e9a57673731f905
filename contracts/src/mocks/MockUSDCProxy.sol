// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice The proxy MockUSDC is deployed behind, shaped like the one real USDC sits behind
/// (FiatTokenProxy, an admin-upgradeability proxy): every call is forwarded by DELEGATECALL to the
/// implementation, except that the admin may call only the proxy's own functions and nobody else
/// can. Storage (balances, nonces, roles) lives here; the implementation holds none.
/// @dev It exists so that the escrow's gas on anvil and in forge includes what the proxy costs on
/// Base: on every call the fallback reads the admin slot (to refuse the admin) and the
/// implementation slot, both cold on the first call of a transaction, then DELEGATECALLs to the
/// implementation (a cold account the first time) and copies calldata in and returndata out. Both
/// addresses live at slots derived from a string, far from the implementation's own layout.
contract MockUSDCProxy {
    /// @dev Slot of the admin address.
    bytes32 private constant ADMIN_SLOT = keccak256("pactum.mock-usdc-proxy.admin");
    /// @dev Slot of the implementation address.
    bytes32 private constant IMPLEMENTATION_SLOT = keccak256("pactum.mock-usdc-proxy.implementation");

    /// @notice The proxy now forwards to `implementation`.
    event Upgraded(address indexed implementation);
    /// @notice The admin changed from `previousAdmin` to `newAdmin`.
    event AdminChanged(address previousAdmin, address newAdmin);

    /// @notice The admin called a function the proxy does not have: it may not reach the token.
    error AdminCannotCallImplementation();
    /// @notice The admin or the implementation would be the zero address.
    error ZeroAddress();
    /// @notice The implementation has no code.
    error NotAContract(address implementation);

    /// @notice Points the proxy at `implementation_` with `admin_` as its admin and, when
    /// `initCall` is not empty, runs it against the implementation in the proxy's storage (the
    /// token's `initialize`), bubbling up its revert.
    constructor(address implementation_, address admin_, bytes memory initCall) {
        _setImplementation(implementation_);
        _setAdmin(admin_);
        if (initCall.length != 0) {
            (bool ok, bytes memory result) = implementation_.delegatecall(initCall);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(result, 0x20), mload(result))
                }
            }
        }
    }

    /// @dev The proxy's own functions answer the admin only; anyone else reaches the token.
    modifier ifAdmin() {
        if (msg.sender == _admin()) {
            _;
        } else {
            _forward();
        }
    }

    /// @notice Every call that is not one of the proxy's own functions goes to the token.
    fallback() external {
        _forward();
    }

    /// @notice The admin (answers the admin only).
    function admin() external ifAdmin returns (address) {
        return _admin();
    }

    /// @notice The implementation (answers the admin only).
    function implementation() external ifAdmin returns (address) {
        return _implementation();
    }

    /// @notice Hands the proxy to `newAdmin`. Admin only.
    function changeAdmin(address newAdmin) external ifAdmin {
        emit AdminChanged(_admin(), newAdmin);
        _setAdmin(newAdmin);
    }

    /// @notice Forwards from now on to `newImplementation`, keeping the storage. Admin only.
    function upgradeTo(address newImplementation) external ifAdmin {
        _setImplementation(newImplementation);
    }

    /// @dev Refuses the admin, then runs the call in the implementation's code with this proxy's
    /// storage and returns (or reverts with) exactly what it did. Never returns to its caller.
    function _forward() private {
        if (msg.sender == _admin()) revert AdminCannotCallImplementation();
        address target = _implementation();
        // Not memory-safe: calldata and returndata are copied over memory from offset 0, as the
        // call ends here either way.
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    function _admin() private view returns (address a) {
        bytes32 slot = ADMIN_SLOT;
        assembly ("memory-safe") {
            a := sload(slot)
        }
    }

    function _implementation() private view returns (address i) {
        bytes32 slot = IMPLEMENTATION_SLOT;
        assembly ("memory-safe") {
            i := sload(slot)
        }
    }

    function _setAdmin(address newAdmin) private {
        if (newAdmin == address(0)) revert ZeroAddress();
        bytes32 slot = ADMIN_SLOT;
        assembly ("memory-safe") {
            sstore(slot, newAdmin)
        }
    }

    function _setImplementation(address newImplementation) private {
        if (newImplementation == address(0)) revert ZeroAddress();
        if (newImplementation.code.length == 0) revert NotAContract(newImplementation);
        bytes32 slot = IMPLEMENTATION_SLOT;
        assembly ("memory-safe") {
            sstore(slot, newImplementation)
        }
        emit Upgraded(newImplementation);
    }
}
