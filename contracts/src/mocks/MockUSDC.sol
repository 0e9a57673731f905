// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {MockUSDCAuthorizations} from "./MockUSDCAuthorizations.sol";

/// @notice A test stand-in for Circle's USDC (FiatToken v2.2) on anvil and in forge: 6 decimals,
/// EIP-2612 permits and EIP-3009 authorizations with Circle's exact typehashes and EIP-712 domain
/// ("USD Coin", "2") (MockUSDCAuthorizations), ERC-1271 signers, a blacklist and a pause switch
/// (MockUSDCRoles). It is an implementation: deploy it behind a MockUSDCProxy with `initialize`,
/// and use the proxy's address as the token's.
/// @dev The project measures the escrow's gas with this token, so it pays for what makes real
/// USDC cost what it does (docs/gas.md, "The mock token and real USDC"): the proxy's slots and
/// DELEGATECALL, the `paused` flag, each party's blacklist state, the domain separator built
/// from the stored name, and the signature check in another account. An account's blacklist
/// flag is bit 255 of its balance word, as in v2.2, so the check warms the slot the balance move
/// then writes.
contract MockUSDC is MockUSDCAuthorizations, IERC20Metadata {
    /// @dev Bit 255 of an account's word: set while the account is blacklisted.
    uint256 private constant BLACKLISTED_BIT = 1 << 255;
    /// @dev Bits 0..254 of an account's word: its balance. Also the cap on the total supply, so
    /// no balance can ever reach the flag bit.
    uint256 private constant BALANCE_MASK = BLACKLISTED_BIT - 1;

    string private _name;
    string private _symbol;
    /// @dev One word per account: the blacklist flag (bit 255) and the balance (the rest).
    mapping(address account => uint256) private _balanceAndBlacklistState;
    mapping(address holder => mapping(address spender => uint256)) private _allowances;
    uint256 private _totalSupply;

    /// @notice Emitted when `account` is blacklisted.
    event BlacklistAdded(address indexed account);
    /// @notice Emitted when `account` is removed from the blacklist.
    event BlacklistRemoved(address indexed account);

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

    // ------------------------------------------------------------------ admin

    /// @notice Sets the token's name, symbol and roles, once, in the proxy's storage (call it
    /// through the proxy, or pass it to the proxy's constructor).
    function initialize(
        string calldata tokenName,
        string calldata tokenSymbol,
        address owner_,
        address pauser_,
        address blacklister_
    ) external {
        _initializeRoles(owner_, pauser_, blacklister_);
        _name = tokenName;
        _symbol = tokenSymbol;
    }

    /// @notice Mints `amount` to `to`. Owner only, not while paused; refused to a blacklisted or
    /// zero address.
    function mint(address to, uint256 amount) external onlyOwner whenNotPaused {
        if (to == address(0)) revert ZeroAddress();
        _update(address(0), to, amount);
    }

    /// @notice Blacklists `account`; its balance is kept but frozen. Blacklister only.
    function blacklist(address account) external onlyBlacklister {
        _balanceAndBlacklistState[account] |= BLACKLISTED_BIT;
        emit BlacklistAdded(account);
    }

    /// @notice Removes `account` from the blacklist; its balance is untouched. Blacklister only.
    function unBlacklist(address account) external onlyBlacklister {
        _balanceAndBlacklistState[account] &= BALANCE_MASK;
        emit BlacklistRemoved(account);
    }

    /// @notice True when `account` is blacklisted.
    function isBlacklisted(address account) external view returns (bool) {
        return _balanceAndBlacklistState[account] & BLACKLISTED_BIT != 0;
    }

    // ------------------------------------------------------------------ ERC-20

    /// @notice The name set at initialization ("USD Coin"), also the EIP-712 domain's name.
    function name() public view virtual override(MockUSDCAuthorizations, IERC20Metadata) returns (string memory) {
        return _name;
    }

    /// @notice The symbol set at initialization ("USDC").
    function symbol() public view virtual returns (string memory) {
        return _symbol;
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
    function transfer(address to, uint256 value)
        public
        virtual
        whenNotPaused
        notBlacklisted(msg.sender)
        notBlacklisted(to)
        returns (bool)
    {
        _transfer(msg.sender, to, value);
        return true;
    }

    /// @notice Lets `spender` move up to `value` of the caller's tokens; neither may be blacklisted.
    function approve(address spender, uint256 value)
        public
        virtual
        whenNotPaused
        notBlacklisted(msg.sender)
        notBlacklisted(spender)
        returns (bool)
    {
        _approve(msg.sender, spender, value);
        return true;
    }

    /// @notice Moves `value` from `from` to `to` against the caller's allowance. The caller,
    /// `from` and `to` must not be blacklisted.
    /// @dev Like FiatToken v2.2, the allowance is always decremented, `type(uint256).max`
    /// included (there is no "infinite approval"), so every transferFrom pays for writing it.
    function transferFrom(address from, address to, uint256 value)
        public
        virtual
        whenNotPaused
        notBlacklisted(msg.sender)
        notBlacklisted(from)
        notBlacklisted(to)
        returns (bool)
    {
        _spendAllowance(from, msg.sender, value);
        _transfer(from, to, value);
        return true;
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
    function _transfer(address from, address to, uint256 value) internal virtual override {
        if (from == address(0) || to == address(0)) revert ZeroAddress();
        _update(from, to, value);
    }

    /// @dev Sets the allowance and emits Approval. Blacklist checks are the caller's.
    function _approve(address holder, address spender, uint256 value) internal virtual override {
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

    /// @dev Reverts when `account` is blacklisted (bit 255 of its balance word).
    function _requireNotBlacklisted(address account) internal view override {
        if (_balanceAndBlacklistState[account] & BLACKLISTED_BIT != 0) revert Blacklisted(account);
    }
}
