// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice MockUSDC's roles and its pause switch, kept in the proxy's storage as USDC keeps
/// them: the owner (who mints here), the pauser with the `paused` flag packed beside its address
/// in one slot, and the blacklister. Set once by `initialize` through the proxy.
/// @dev First in MockUSDC's inheritance, so these are its first storage slots. Every call that
/// moves tokens or consumes a signature reads the pauser's slot (`whenNotPaused`), cold on the
/// first token call of a transaction, as on real USDC.
abstract contract MockUSDCRoles {
    /// @notice Mints, and sets a variant's extras (CallbackUSDC's hook).
    address public owner;
    /// @notice May pause and unpause.
    address public pauser;
    /// @notice While true, no transfer, approval, permit or authorization goes through.
    bool public paused;
    /// @notice May blacklist and unblacklist accounts.
    address public blacklister;
    /// @dev Set by `_initializeRoles`; the bare implementation sets it in its constructor so that
    /// only a proxy's storage can ever be initialized.
    bool private _initialized;

    /// @notice The token stopped: transfers, approvals and authorizations are refused.
    event Pause();
    /// @notice The token runs again.
    event Unpause();

    /// @notice The caller is not the owner.
    error OnlyOwner();
    /// @notice The caller is not the pauser.
    error OnlyPauser();
    /// @notice The caller is not the blacklister.
    error OnlyBlacklister();
    /// @notice The token is paused.
    error Paused();
    /// @notice `initialize` ran already (or this is the bare implementation).
    error AlreadyInitialized();
    /// @notice A role would be the zero address.
    error ZeroRole();

    /// @dev Locks the implementation's own storage: only a proxy is ever initialized.
    constructor() {
        _initialized = true;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert OnlyOwner();
        _;
    }

    modifier onlyBlacklister() {
        if (msg.sender != blacklister) revert OnlyBlacklister();
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert Paused();
        _;
    }

    /// @notice Stops every transfer, approval, permit and authorization. Pauser only.
    function pause() external {
        if (msg.sender != pauser) revert OnlyPauser();
        paused = true;
        emit Pause();
    }

    /// @notice Lets the token run again. Pauser only.
    function unpause() external {
        if (msg.sender != pauser) revert OnlyPauser();
        paused = false;
        emit Unpause();
    }

    function _initializeRoles(address owner_, address pauser_, address blacklister_) internal {
        if (_initialized) revert AlreadyInitialized();
        if (owner_ == address(0) || pauser_ == address(0) || blacklister_ == address(0)) revert ZeroRole();
        _initialized = true;
        (owner, pauser, blacklister) = (owner_, pauser_, blacklister_);
    }
}
