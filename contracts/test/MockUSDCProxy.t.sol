// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {UsdcDeployer} from "./utils/UsdcDeployer.sol";
import {MockUSDC} from "../src/mocks/MockUSDC.sol";
import {MockUSDCProxy} from "../src/mocks/MockUSDCProxy.sol";
import {MockUSDCRoles} from "../src/mocks/MockUSDCRoles.sol";

/// @dev Cheatcodes this file needs beyond utils/Vm.sol.
interface AccessVm {
    /// @notice Starts recording every storage read and write.
    function record() external;
    /// @notice The slots of `target` read and written since `record`.
    function accesses(address target) external returns (bytes32[] memory reads, bytes32[] memory writes);
}

/// @notice MockUSDC is deployed as USDC is: an implementation behind an admin-upgradeability proxy
/// whose address is the token's. Calls reach the token through it, the admin never does, and the
/// first call of a transaction reads the slots that make USDC cost what it does.
contract MockUSDCProxyTest is UsdcDeployer {
    AccessVm internal constant accessVm = AccessVm(VM_ADDRESS);

    bytes32 internal constant ADMIN_SLOT = keccak256("pactum.mock-usdc-proxy.admin");
    bytes32 internal constant IMPLEMENTATION_SLOT = keccak256("pactum.mock-usdc-proxy.implementation");
    /// @dev MockUSDC's storage (`forge inspect MockUSDC storageLayout`): the pauser and
    /// `paused` share slot 1, the name is slot 5.
    bytes32 internal constant PAUSE_SLOT = bytes32(uint256(1));
    bytes32 internal constant NAME_SLOT = bytes32(uint256(5));
    uint256 internal constant NOW = 1_750_000_000;

    MockUSDC internal implementation;
    MockUSDC internal usdc;
    MockUSDCProxy internal proxy;
    address internal alice;
    uint256 internal aliceKey;
    address internal bob = address(0xB0B);

    function setUp() public {
        vm.warp(NOW);
        (alice, aliceKey) = makeAddrAndKey("alice");
        implementation = new MockUSDC();
        usdc = _behindProxy(implementation);
        proxy = MockUSDCProxy(address(usdc));
        usdc.mint(alice, 100e6);
    }

    function test_callsThroughTheProxyUseItsStorage() public {
        vm.prank(alice);
        assertTrue(usdc.transfer(bob, 40e6));
        assertEq(usdc.balanceOf(bob), 40e6);
        assertEq(usdc.totalSupply(), 100e6);
        assertEq(keccak256(bytes(usdc.name())), keccak256("USD Coin"));
        assertEq(usdc.owner(), address(this));
        // The implementation holds nothing of its own.
        assertEq(implementation.balanceOf(bob), 0);
        assertEq(implementation.owner(), address(0));
        // The EIP-712 domain is the proxy's.
        bytes32 expected = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("USD Coin"),
                keccak256("2"),
                block.chainid,
                address(proxy)
            )
        );
        assertEq(usdc.DOMAIN_SEPARATOR(), expected);
    }

    function test_adminCannotCallTheToken() public {
        vm.prank(USDC_PROXY_ADMIN);
        vm.expectRevert(MockUSDCProxy.AdminCannotCallImplementation.selector);
        usdc.balanceOf(alice);
        usdc.mint(USDC_PROXY_ADMIN, 1e6);
        vm.prank(USDC_PROXY_ADMIN);
        vm.expectRevert(MockUSDCProxy.AdminCannotCallImplementation.selector);
        // forge-lint: disable-next-line(erc20-unchecked-transfer)
        usdc.transfer(bob, 1e6);
    }

    function test_proxyFunctionsAnswerOnlyTheAdmin() public {
        vm.startPrank(USDC_PROXY_ADMIN);
        assertEq(proxy.admin(), USDC_PROXY_ADMIN);
        assertEq(proxy.implementation(), address(implementation));
        vm.stopPrank();
        // Anyone else is forwarded to the token, which has no such function.
        vm.prank(alice);
        vm.expectRevert();
        proxy.implementation();
        MockUSDC next = new MockUSDC();
        vm.prank(alice);
        vm.expectRevert();
        proxy.upgradeTo(address(next));
        vm.prank(USDC_PROXY_ADMIN);
        assertEq(proxy.implementation(), address(implementation));
    }

    function test_upgradeKeepsStorageAndAdminCanBeHandedOver() public {
        MockUSDC next = new MockUSDC();
        vm.prank(USDC_PROXY_ADMIN);
        proxy.upgradeTo(address(next));
        vm.prank(USDC_PROXY_ADMIN);
        assertEq(proxy.implementation(), address(next));
        assertEq(usdc.balanceOf(alice), 100e6, "balances survive the upgrade");

        vm.prank(USDC_PROXY_ADMIN);
        proxy.changeAdmin(bob);
        // The old admin is an ordinary caller now; the new one is shut out of the token.
        vm.prank(USDC_PROXY_ADMIN);
        assertEq(usdc.balanceOf(alice), 100e6);
        vm.prank(bob);
        vm.expectRevert(MockUSDCProxy.AdminCannotCallImplementation.selector);
        usdc.balanceOf(alice);
    }

    function test_proxyRefusesAZeroAdminOrAnImplementationWithoutCode() public {
        vm.expectRevert(MockUSDCProxy.ZeroAddress.selector);
        new MockUSDCProxy(address(implementation), address(0), "");
        vm.expectRevert(abi.encodeWithSelector(MockUSDCProxy.NotAContract.selector, bob));
        new MockUSDCProxy(bob, USDC_PROXY_ADMIN, "");
    }

    function test_initializeRunsOnceAndNeverOnTheImplementation() public {
        vm.expectRevert(MockUSDCRoles.AlreadyInitialized.selector);
        usdc.initialize("X", "X", alice, alice, alice);
        vm.expectRevert(MockUSDCRoles.AlreadyInitialized.selector);
        implementation.initialize("X", "X", alice, alice, alice);
        // A failing initialization fails the proxy's deployment.
        bytes memory init = abi.encodeCall(MockUSDC.initialize, ("USD Coin", "USDC", alice, address(0), alice));
        vm.expectRevert(MockUSDCRoles.ZeroRole.selector);
        new MockUSDCProxy(address(implementation), USDC_PROXY_ADMIN, init);
    }

    /// @notice A transfer reads the proxy's admin and implementation slots and the pause flag
    /// before it touches a balance, as on USDC.
    function test_transferReadsAdminImplementationAndPauseSlots() public {
        accessVm.record();
        vm.prank(alice);
        assertTrue(usdc.transfer(bob, 1e6));
        (bytes32[] memory reads,) = accessVm.accesses(address(usdc));
        assertTrue(_has(reads, ADMIN_SLOT), "admin slot");
        assertTrue(_has(reads, IMPLEMENTATION_SLOT), "implementation slot");
        assertTrue(_has(reads, PAUSE_SLOT), "pause flag");
        assertFalse(_has(reads, NAME_SLOT), "no signature, no domain");
    }

    /// @notice An authorization also reads the name, to build the domain separator afresh.
    function test_authorizationReadsTheNameForTheDomain() public {
        bytes32 structHash = keccak256(
            abi.encode(usdc.TRANSFER_WITH_AUTHORIZATION_TYPEHASH(), alice, bob, 1e6, 0, NOW + 1, bytes32("n"))
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", usdc.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(aliceKey, digest);
        accessVm.record();
        usdc.transferWithAuthorization(alice, bob, 1e6, 0, NOW + 1, "n", abi.encodePacked(r, s, v));
        (bytes32[] memory reads,) = accessVm.accesses(address(usdc));
        assertTrue(_has(reads, NAME_SLOT), "name slot");
        assertTrue(_has(reads, PAUSE_SLOT), "pause flag");
        assertEq(usdc.balanceOf(bob), 1e6);
    }

    /// @notice The separator is not cached: a changed name in storage changes it at once.
    function test_domainSeparatorIsBuiltFromTheStoredName() public {
        // A short string sits in its slot left-aligned, its length times two in the last byte.
        vm.store(address(usdc), NAME_SLOT, bytes32(abi.encodePacked(bytes10("Other Coin"), bytes21(0), uint8(20))));
        assertEq(keccak256(bytes(usdc.name())), keccak256("Other Coin"));
        bytes32 expected = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Other Coin"),
                keccak256("2"),
                block.chainid,
                address(proxy)
            )
        );
        assertEq(usdc.DOMAIN_SEPARATOR(), expected);
    }

    function _has(bytes32[] memory slots, bytes32 slot) internal pure returns (bool) {
        for (uint256 i; i < slots.length; ++i) {
            if (slots[i] == slot) return true;
        }
        return false;
    }
}
