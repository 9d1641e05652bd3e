import base from "./stryker.config.json" with { type: "json" }

/**
 * `npm run mutants:http`: the settings of `npm run mutants`, over `src/http` and against the unit and
 * workerd projects together (see vitest.mutants-http.config.ts), with reports and increments of its own.
 * A mutant's run starts workerd, so it gets more time before it counts as a timeout.
 */
export default {
  ...base,
  vitest: { ...base.vitest, configFile: "vitest.mutants-http.config.ts" },
  mutate: ["src/http/**/*.ts"],
  timeoutMS: 10_000,
  htmlReporter: { fileName: "reports/mutation/http.html" },
  jsonReporter: { fileName: "reports/mutation/http.json" },
  incrementalFile: "reports/mutation/incremental-http.json"
}
