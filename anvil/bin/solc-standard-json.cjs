// Compiles the standard-JSON input read from stdin with solc-js and writes the standard-JSON
// output to stdout. Sources arrive with their content inlined by forge, so no import callback
// is needed; an import that is missing surfaces as a normal compiler error.
const fs = require("fs");
const path = require("path");
const solc = require(path.join(__dirname, "..", "node_modules", "solc"));

const input = fs.readFileSync(0, "utf8");
const output = solc.compile(input);
fs.writeFileSync(1, output);
