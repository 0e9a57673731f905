// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "./Test.sol";
import {MockUSDC} from "../../src/mocks/MockUSDC.sol";
import {MockUSDCProxy} from "../../src/mocks/MockUSDCProxy.sol";

/// @notice Puts a MockUSDC implementation (or a variant of it) behind a MockUSDCProxy, as real
/// USDC is deployed, and initializes it through the proxy: "USD Coin" / "USDC", with the test
/// contract as owner, pauser and blacklister. The proxy's admin is a separate address, since the
/// admin may not call the token.
abstract contract UsdcDeployer is Test {
    /// @dev The proxy admin of every token deployed here.
    address internal constant USDC_PROXY_ADMIN = address(0xAD317);

    /// @notice `implementation` behind a new proxy, as the token the tests use.
    function _behindProxy(MockUSDC implementation) internal returns (MockUSDC) {
        bytes memory init =
            abi.encodeCall(MockUSDC.initialize, ("USD Coin", "USDC", address(this), address(this), address(this)));
        return MockUSDC(address(new MockUSDCProxy(address(implementation), USDC_PROXY_ADMIN, init)));
    }

    /// @notice A new MockUSDC behind a new proxy.
    function _deployUsdc() internal returns (MockUSDC) {
        return _behindProxy(new MockUSDC());
    }
}
