// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {Vm} from "./Vm.sol";

/// @notice A small forge test base (forge-std is not vendored): the cheatcode handle, assertions
/// that revert with both values in the message, `bound`, named keys, and invariant targets.
abstract contract Test {
    address internal constant VM_ADDRESS = address(uint160(uint256(keccak256("hevm cheat code"))));
    Vm internal constant vm = Vm(VM_ADDRESS);

    /// @notice Marks this contract as a test contract for forge.
    bool public IS_TEST = true;

    address[] internal _targetContracts;

    // ---------------------------------------------------------------- invariant targets

    /// @notice The contracts the invariant fuzzer calls (all deployed ones when empty).
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    // ---------------------------------------------------------------- helpers

    /// @notice Maps `x` into [min, max]: values already in range are kept, small values map to
    /// the bottom of the range and values near 2^256 - 1 to the top, so the fuzzer's edge cases
    /// stay edge cases; anything else wraps around.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        // Not in range, so the range is not all of uint256 and `size` cannot overflow.
        uint256 size = max - min + 1;
        if (x < size) return min + x;
        uint256 fromTop = type(uint256).max - x;
        if (fromTop < size) return max - fromTop;
        return min + (x % size);
    }

    /// @notice A deterministic key derived from `name`, its address, labelled `name`.
    function makeAddrAndKey(string memory name) internal returns (address account, uint256 key) {
        key = uint256(keccak256(abi.encodePacked(name)));
        account = vm.addr(key);
        vm.label(account, name);
    }

    /// @notice A deterministic address derived from `name`, labelled `name`.
    function makeAddr(string memory name) internal returns (address account) {
        (account,) = makeAddrAndKey(name);
    }

    // ---------------------------------------------------------------- assertions

    function fail(string memory message) internal pure {
        revert(message);
    }

    function assertTrue(bool condition) internal pure {
        assertTrue(condition, "");
    }

    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) fail(_msg("assertTrue failed", message));
    }

    function assertFalse(bool condition) internal pure {
        assertFalse(condition, "");
    }

    function assertFalse(bool condition, string memory message) internal pure {
        if (condition) fail(_msg("assertFalse failed", message));
    }

    function assertEq(uint256 left, uint256 right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(uint256 left, uint256 right, string memory message) internal pure {
        if (left != right) fail(_pair("assertEq(uint256)", _u(left), _u(right), message));
    }

    function assertEq(address left, address right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(address left, address right, string memory message) internal pure {
        if (left != right) {
            fail(_pair("assertEq(address)", _a(left), _a(right), message));
        }
    }

    function assertEq(bytes32 left, bytes32 right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(bytes32 left, bytes32 right, string memory message) internal pure {
        if (left != right) fail(_pair("assertEq(bytes32)", _b32(left), _b32(right), message));
    }

    function assertEq(bool left, bool right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(bool left, bool right, string memory message) internal pure {
        if (left != right) fail(_pair("assertEq(bool)", _bool(left), _bool(right), message));
    }

    function assertEq(bytes memory left, bytes memory right) internal pure {
        assertEq(left, right, "");
    }

    function assertEq(bytes memory left, bytes memory right, string memory message) internal pure {
        if (keccak256(left) != keccak256(right)) {
            fail(_pair("assertEq(bytes)", _hex(left), _hex(right), message));
        }
    }

    function assertGt(uint256 left, uint256 right) internal pure {
        assertGt(left, right, "");
    }

    function assertGt(uint256 left, uint256 right, string memory message) internal pure {
        if (left <= right) fail(_pair("assertGt", _u(left), _u(right), message));
    }

    function assertGe(uint256 left, uint256 right) internal pure {
        assertGe(left, right, "");
    }

    function assertGe(uint256 left, uint256 right, string memory message) internal pure {
        if (left < right) fail(_pair("assertGe", _u(left), _u(right), message));
    }

    function assertLt(uint256 left, uint256 right) internal pure {
        assertLt(left, right, "");
    }

    function assertLt(uint256 left, uint256 right, string memory message) internal pure {
        if (left >= right) fail(_pair("assertLt", _u(left), _u(right), message));
    }

    function assertLe(uint256 left, uint256 right) internal pure {
        assertLe(left, right, "");
    }

    function assertLe(uint256 left, uint256 right, string memory message) internal pure {
        if (left > right) fail(_pair("assertLe", _u(left), _u(right), message));
    }

    // ---------------------------------------------------------------- formatting

    function _pair(string memory what, string memory left, string memory right, string memory message)
        private
        pure
        returns (string memory)
    {
        return _msg(string.concat(what, " failed: left=", left, " right=", right), message);
    }

    function _msg(string memory what, string memory message) private pure returns (string memory) {
        return bytes(message).length == 0 ? what : string.concat(message, ": ", what);
    }

    function _u(uint256 value) private pure returns (string memory) {
        return Strings.toString(value);
    }

    function _a(address value) private pure returns (string memory) {
        return Strings.toHexString(value);
    }

    function _b32(bytes32 value) private pure returns (string memory) {
        return Strings.toHexString(uint256(value), 32);
    }

    function _bool(bool value) private pure returns (string memory) {
        return value ? "true" : "false";
    }

    function _hex(bytes memory value) private pure returns (string memory) {
        bytes memory digits = "0123456789abcdef";
        bytes memory out = new bytes(2 + value.length * 2);
        out[0] = "0";
        out[1] = "x";
        for (uint256 i = 0; i < value.length; ++i) {
            out[2 + 2 * i] = digits[uint8(value[i]) >> 4];
            out[3 + 2 * i] = digits[uint8(value[i]) & 0x0f];
        }
        return string(out);
    }
}
