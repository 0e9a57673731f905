// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice The foundry (1.7) cheatcodes this repository's tests use, called at
/// `address(uint160(uint256(keccak256("hevm cheat code"))))`.
interface Vm {
    /// @notice A log captured by `recordLogs`.
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    // ---------------------------------------------------------------- environment

    /// @notice Sets `block.timestamp`.
    function warp(uint256 newTimestamp) external;
    /// @notice Sets `block.number`.
    function roll(uint256 newHeight) external;
    /// @notice Sets `block.chainid`.
    function chainId(uint256 newChainId) external;
    /// @notice Sets the balance of `account` (ETH).
    function deal(address account, uint256 newBalance) external;
    /// @notice Sets the code at `target`.
    function etch(address target, bytes calldata newRuntimeBytecode) external;
    /// @notice Writes a storage slot of `target`.
    function store(address target, bytes32 slot, bytes32 value) external;
    /// @notice Reads a storage slot of `target`.
    function load(address target, bytes32 slot) external view returns (bytes32 data);

    // ---------------------------------------------------------------- callers

    /// @notice Makes the next call come from `msgSender`.
    function prank(address msgSender) external;
    /// @notice Makes the next call come from `msgSender` with `tx.origin` set to `txOrigin`.
    function prank(address msgSender, address txOrigin) external;
    /// @notice Makes every call until `stopPrank` come from `msgSender`.
    function startPrank(address msgSender) external;
    /// @notice Ends a `startPrank`.
    function stopPrank() external;

    // ---------------------------------------------------------------- keys and labels

    /// @notice Signs `digest` with `privateKey` (secp256k1, low-s).
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    /// @notice The address of `privateKey`.
    function addr(uint256 privateKey) external pure returns (address keyAddr);
    /// @notice Names `account` in traces.
    function label(address account, string calldata newLabel) external;

    // ---------------------------------------------------------------- expectations

    /// @notice Expects the next call to revert with exactly `revertData`'s selector and no data.
    function expectRevert(bytes4 revertData) external;
    /// @notice Expects the next call to revert with exactly `revertData`.
    function expectRevert(bytes calldata revertData) external;
    /// @notice Expects the next call to revert, with any data.
    function expectRevert() external;
    /// @notice Expects the next call to revert with an error whose selector is `revertData`.
    function expectPartialRevert(bytes4 revertData) external;
    /// @notice Expects the next emitted event to match on the checked topics and data.
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    /// @notice As above, also checking that `emitter` emits it.
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter) external;
    /// @notice Discards the current fuzz input when `condition` is false.
    function assume(bool condition) external pure;

    // ---------------------------------------------------------------- logs and gas

    /// @notice Starts recording every emitted log.
    function recordLogs() external;
    /// @notice Returns and clears the recorded logs.
    function getRecordedLogs() external returns (Log[] memory logs);
    /// @notice Records the gas of the last call under `name` in the snapshots directory.
    function snapshotGasLastCall(string calldata name) external returns (uint256 gasUsed);
    /// @notice Starts a named gas-snapshot section.
    function startSnapshotGas(string calldata name) external;
    /// @notice Ends the latest gas-snapshot section and records it.
    function stopSnapshotGas() external returns (uint256 gasUsed);

    // ---------------------------------------------------------------- state snapshots

    /// @notice Takes a snapshot of the whole EVM state.
    function snapshotState() external returns (uint256 snapshotId);
    /// @notice Puts the EVM state back as it was at `snapshotId`.
    function revertToState(uint256 snapshotId) external returns (bool success);

    // ---------------------------------------------------------------- environment variables

    /// @notice Reads env var `name` as uint256, or `defaultValue` when unset.
    function envOr(string calldata name, uint256 defaultValue) external view returns (uint256 value);
    /// @notice Reads env var `name` as bool, or `defaultValue` when unset.
    function envOr(string calldata name, bool defaultValue) external view returns (bool value);
    /// @notice Reads env var `name` as address, or `defaultValue` when unset.
    function envOr(string calldata name, address defaultValue) external view returns (address value);
    /// @notice Reads env var `name` as string, or `defaultValue` when unset.
    function envOr(string calldata name, string calldata defaultValue) external view returns (string memory value);
}
