import { defineConfig } from "vitest/config"
import { workersProjects } from "./vitest.config.ts"
import { unitForMutants } from "./vitest.mutants.config.ts"

/**
 * For `npm run mutants:http`: the HTTP edge (`src/http`) is tested mostly inside workerd, so its mutants
 * run against the unit project and the two workerd projects together. StrykerJS switches a mutant on
 * through Vitest's provide/inject, which the workers pool passes into the isolate.
 */
export default defineConfig({
  test: { projects: [{ test: { name: "unit", ...unitForMutants } }, ...workersProjects] }
})
