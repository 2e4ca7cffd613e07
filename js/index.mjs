// @softadastra/sdk as an ES module: the same API as the CommonJS entry point (index.js),
// whose named exports Node finds in its `module.exports = {...}`.
export * from "./index.js";
export { default } from "./index.js";
