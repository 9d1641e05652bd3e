import { defineConfig } from "vitest/config"

/**
 * The unit project alone, for `npm run mutants` (src/domain, src/services, App.ts): Node runs a mutant's
 * tests in a fraction of the time workerd takes. The unit tests reach the HTTP edge too:
 * `test/unit/App.test.ts` drives the whole gateway in Node through `makeHandler`.
 */
export const unitForMutants = {
  include: ["test/unit/**/*.test.ts"],
  // The deploy script's tests run scripts/, which is not mutated: they would only slow every mutant's run.
  exclude: ["test/unit/deploy.test.ts"],
  environment: "node" as const,
  globalSetup: ["test/support/globalSetup.ts"],
  // Instrumented code runs several times slower (every mutant is behind a switch).
  testTimeout: 60_000
}

export default defineConfig({ test: unitForMutants })
