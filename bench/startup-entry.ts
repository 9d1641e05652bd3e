/** What a cold isolate evaluates and builds, bundled alone for `BENCH_ONLY=startup` and `=js` (bench/startup-probe.mjs, bench/js-probe.mjs). */
export * as ConfigProvider from "effect/ConfigProvider"
export { makeHandler } from "../src/App.ts"
