import { defineConfig } from "vitest/config"

/**
 * The unit project alone, for `npm run mutants`: StrykerJS switches mutants on through a global in the
 * test process, which the workerd pool (a separate runtime) does not share. The unit tests reach the
 * HTTP edge too: `test/unit/App.test.ts` drives the whole gateway in Node through `makeHandler`.
 */
export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
    // The deploy script's tests run scripts/, which is not mutated: they would only slow every mutant's run.
    exclude: ["test/unit/deploy.test.ts"],
    environment: "node",
    globalSetup: ["test/support/globalSetup.ts"],
    // Instrumented code runs several times slower (every mutant is behind a switch).
    testTimeout: 60_000
  }
})
