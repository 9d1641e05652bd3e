/** What a cold isolate evaluates and builds, bundled alone for `BENCH_ONLY=startup` (see bench/startup-probe.mjs). */
export * as ConfigProvider from "effect/ConfigProvider"
export { makeHandler } from "../src/App.ts"
