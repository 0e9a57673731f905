// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {UsdcDeployer} from "./utils/UsdcDeployer.sol";
import {Vm} from "./utils/Vm.sol";
import {MockUSDC} from "../src/mocks/MockUSDC.sol";
import {MockUSDCAuthorizations} from "../src/mocks/MockUSDCAuthorizations.sol";
import {TransferBatch} from "../src/TransferBatch.sol";
import {IFiatToken} from "../src/interfaces/IFiatToken.sol";

/// @notice TransferBatch against the mock USDC behind its proxy, with real signatures: every item
/// of a good batch pays exactly; an item the token refuses is reported and skipped while the
/// others pay; a replayed batch moves nothing; too little gas reverts the whole batch. The gas of
/// one direct `transferWithAuthorization` and of batches of 1, 10 and 50 is recorded in
/// `snapshots/TransferBatchTest.json`.
/// @dev Signatures are made in `setUp`, a transaction of its own, so each measured call meets
/// cold accounts and slots as the first call of a real transaction does. Payers and payees
/// already hold USDC (a live token's steady state).
contract TransferBatchTest is UsdcDeployer {
    event TransferRefused(uint256 index, address indexed from, bytes32 indexed nonce, bytes reason);

    uint256 internal constant NOW = 1_750_000_000;
    uint256 internal constant PAYERS = 50;
    uint256 internal constant VALUE = 1_234_567;

    MockUSDC internal usdc;
    TransferBatch internal batcher;
    address internal relayer = address(0xBEEF);

    address[] internal payers;
    uint256[] internal payerKeys;
    address[] internal payees;
    /// @dev One signed authorization per payer, VALUE to its payee, valid for an hour.
    TransferBatch.Authorization[] internal signed;

    function setUp() public {
        vm.warp(NOW);
        usdc = _deployUsdc();
        batcher = new TransferBatch();
        for (uint256 i = 0; i < PAYERS; ++i) {
            (address payer, uint256 key) = makeAddrAndKey(string.concat("payer-", Strings.toString(i)));
            address payee = makeAddr(string.concat("payee-", Strings.toString(i)));
            usdc.mint(payer, 100e6);
            usdc.mint(payee, 1e6);
            payers.push(payer);
            payerKeys.push(key);
            payees.push(payee);
            signed.push(_authorization(i, VALUE, NOW - 1, NOW + 3600, keccak256(abi.encode("payment", i))));
        }
    }

    // ---------------------------------------------------------------- helpers

    function _authorization(uint256 i, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce)
        internal
        view
        returns (TransferBatch.Authorization memory)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), payers[i], payees[i], value, validAfter, validBefore, nonce
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", usdc.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKeys[i], digest);
        return TransferBatch.Authorization({
            from: payers[i],
            to: payees[i],
            value: value,
            validAfter: validAfter,
            validBefore: validBefore,
            nonce: nonce,
            signature: abi.encodePacked(r, s, v)
        });
    }

    /// @dev The first `n` signed authorizations.
    function _first(uint256 n) internal view returns (TransferBatch.Authorization[] memory batch) {
        batch = new TransferBatch.Authorization[](n);
        for (uint256 i = 0; i < n; ++i) {
            batch[i] = signed[i];
        }
    }

    function _transferAll(TransferBatch.Authorization[] memory batch) internal returns (uint256 paid) {
        vm.prank(relayer);
        return batcher.transferAll(IFiatToken(address(usdc)), batch);
    }

    /// @dev The `TransferRefused` logs among `logs`: (index, payer, nonce, reason) each.
    function _refusals(Vm.Log[] memory logs)
        internal
        view
        returns (uint256[] memory indexes, address[] memory from, bytes32[] memory nonces, bytes[] memory reasons)
    {
        uint256 n = 0;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(batcher) && logs[i].topics[0] == TransferRefused.selector) ++n;
        }
        (indexes, from, nonces, reasons) = (new uint256[](n), new address[](n), new bytes32[](n), new bytes[](n));
        uint256 k = 0;
        for (uint256 i = 0; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter != address(batcher) || log.topics[0] != TransferRefused.selector) continue;
            (indexes[k], reasons[k]) = abi.decode(log.data, (uint256, bytes));
            from[k] = address(uint160(uint256(log.topics[1])));
            nonces[k] = log.topics[2];
            ++k;
        }
    }

    // ---------------------------------------------------------------- behaviour

    function test_everyItemPaysExactly() public {
        uint256 n = 10;
        vm.recordLogs();
        assertEq(_transferAll(_first(n)), n, "paid");
        (uint256[] memory indexes,,,) = _refusals(vm.getRecordedLogs());
        assertEq(indexes.length, 0, "no refusals");
        for (uint256 i = 0; i < n; ++i) {
            assertEq(usdc.balanceOf(payers[i]), 100e6 - VALUE, "payer debited exactly");
            assertEq(usdc.balanceOf(payees[i]), 1e6 + VALUE, "payee credited exactly");
            assertTrue(usdc.authorizationState(payers[i], signed[i].nonce), "nonce spent");
        }
        assertEq(usdc.balanceOf(address(batcher)), 0, "holds nothing");
        assertEq(usdc.balanceOf(relayer), 0, "the caller gets nothing");
    }

    function test_refusedItemsAreSkippedWithTheirReasonAndTheOthersPay() public {
        TransferBatch.Authorization[] memory batch = _first(6);
        // 1: its nonce already spent by a direct transfer of the same authorization.
        TransferBatch.Authorization memory a = batch[1];
        usdc.transferWithAuthorization(a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, a.signature);
        // 2: expired.
        batch[2] = _authorization(2, VALUE, NOW - 10, NOW, keccak256("expired"));
        // 3: the amount changed after signing (the signature no longer matches).
        batch[3].value = VALUE + 1;
        // 4: more than the payer holds.
        batch[4] = _authorization(4, 101e6, NOW - 1, NOW + 3600, keccak256("too much"));

        vm.recordLogs();
        assertEq(_transferAll(batch), 2, "items 0 and 5 paid");
        (uint256[] memory indexes, address[] memory from, bytes32[] memory nonces, bytes[] memory reasons) =
            _refusals(vm.getRecordedLogs());
        assertEq(indexes.length, 4, "four refusals");
        bytes4[4] memory expected = [
            MockUSDCAuthorizations.AuthorizationAlreadyUsed.selector,
            MockUSDCAuthorizations.AuthorizationExpired.selector,
            MockUSDCAuthorizations.InvalidSignature.selector,
            MockUSDC.InsufficientBalance.selector
        ];
        for (uint256 k = 0; k < 4; ++k) {
            assertEq(indexes[k], k + 1, "index");
            assertEq(from[k], batch[k + 1].from, "payer");
            assertEq(nonces[k], batch[k + 1].nonce, "nonce");
            assertEq(bytes4(reasons[k]), expected[k], "the token's revert data");
        }

        assertEq(usdc.balanceOf(payees[0]), 1e6 + VALUE, "item 0 paid");
        assertEq(usdc.balanceOf(payees[5]), 1e6 + VALUE, "item 5 paid");
        assertEq(usdc.balanceOf(payees[1]), 1e6 + VALUE, "item 1 paid once, directly");
        for (uint256 i = 2; i <= 4; ++i) {
            assertEq(usdc.balanceOf(payers[i]), 100e6, "refused payer keeps everything");
            assertEq(usdc.balanceOf(payees[i]), 1e6, "refused payee gets nothing");
        }
        assertFalse(usdc.authorizationState(payers[2], batch[2].nonce), "expired nonce unspent");
        assertFalse(usdc.authorizationState(payers[3], batch[3].nonce), "tampered nonce unspent");
    }

    function test_aReplayedBatchMovesNothing() public {
        TransferBatch.Authorization[] memory batch = _first(5);
        assertEq(_transferAll(batch), 5, "paid once");
        vm.recordLogs();
        assertEq(_transferAll(batch), 0, "replay pays nothing");
        (uint256[] memory indexes,,, bytes[] memory reasons) = _refusals(vm.getRecordedLogs());
        assertEq(indexes.length, 5, "every replayed item refused");
        for (uint256 k = 0; k < 5; ++k) {
            assertEq(bytes4(reasons[k]), MockUSDCAuthorizations.AuthorizationAlreadyUsed.selector, "spent");
            assertEq(usdc.balanceOf(payers[k]), 100e6 - VALUE, "debited once");
            assertEq(usdc.balanceOf(payees[k]), 1e6 + VALUE, "credited once");
        }
    }

    function test_aRefusedItemMovesNothingForAnyoneElse() public {
        // The same authorization twice in one batch: the second is refused, the first stands.
        TransferBatch.Authorization[] memory batch = new TransferBatch.Authorization[](2);
        (batch[0], batch[1]) = (signed[0], signed[0]);
        assertEq(_transferAll(batch), 1, "one payment");
        assertEq(usdc.balanceOf(payees[0]), 1e6 + VALUE, "credited once");
    }

    function test_anEmptyBatchDoesNothing() public {
        assertEq(_transferAll(new TransferBatch.Authorization[](0)), 0, "nothing paid");
    }

    /// @dev At every gas limit from far too little to enough, the batch either pays in full or
    /// reverts with nothing moved: running out of gas never passes for a refusal by the token.
    function test_tooLittleGasNeverPassesForARefusal() public {
        TransferBatch.Authorization[] memory batch = _first(5);
        bytes memory call = abi.encodeCall(TransferBatch.transferAll, (IFiatToken(address(usdc)), batch));
        uint256 outOfGas = 0;
        for (uint256 gas = 30_000; gas < 600_000; gas += 9_973) {
            uint256 state = vm.snapshotState();
            vm.recordLogs();
            vm.prank(relayer);
            (bool ok, bytes memory result) = address(batcher).call{gas: gas}(call);
            (uint256[] memory refused,,,) = _refusals(vm.getRecordedLogs());
            assertEq(refused.length, 0, "no item reported refused");
            if (ok) {
                assertEq(abi.decode(result, (uint256)), 5, "a batch that succeeds pays everything");
            } else {
                for (uint256 i = 0; i < 5; ++i) {
                    assertEq(usdc.balanceOf(payees[i]), 1e6, "a reverted batch moves nothing");
                }
                if (result.length >= 4 && bytes4(result) == TransferBatch.OutOfGas.selector) ++outOfGas;
            }
            vm.revertToState(state);
        }
        assertGt(outOfGas, 0, "some limits end in OutOfGas inside an item");
    }

    // ---------------------------------------------------------------- gas

    function test_gasOfOneDirectTransfer() public {
        TransferBatch.Authorization memory a = signed[0];
        vm.prank(relayer);
        usdc.transferWithAuthorization(a.from, a.to, a.value, a.validAfter, a.validBefore, a.nonce, a.signature);
        vm.snapshotGasLastCall("transferWithAuthorization, direct");
    }

    function test_gasOfBatchOf1() public {
        _gasOfBatch(1, "transferAll, 1 item");
    }

    function test_gasOfBatchOf10() public {
        _gasOfBatch(10, "transferAll, 10 items");
    }

    function test_gasOfBatchOf50() public {
        _gasOfBatch(50, "transferAll, 50 items");
    }

    function _gasOfBatch(uint256 n, string memory name) internal {
        TransferBatch.Authorization[] memory batch = _first(n);
        vm.prank(relayer);
        assertEq(batcher.transferAll(IFiatToken(address(usdc)), batch), n, "all paid");
        vm.snapshotGasLastCall(name);
    }
}
