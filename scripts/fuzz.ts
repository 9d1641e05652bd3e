/**
 * `npm run fuzz`: the fuzzer of `npm test` at scale, against the real runtime. Starts the fake upstream and
 * `wrangler dev` (fresh local state, loopback only), sends FUZZ_RUNS (default 10,000) generated requests
 * one after another, and prints how many answers had each status. Exits 1 at the first answer that breaks
 * the property (a 5xx, an error not in OpenAI's shape, no request id), with the seed and the request that
 * did, or when the gateway no longer answers a normal request afterwards. FUZZ_SEED replays a run.
 */
import fc from "fast-check"
import { startFakeUpstream } from "../test/support/fakeUpstream.ts"
import { fuzzCase, judge, sampleSeeds, toRequest } from "../test/support/fuzzCases.ts"
import { startWranglerDev } from "../test/support/wranglerDev.ts"

const KEY = "fuzz-key"
const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000)
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2_147_483_647)
/** No request may take longer than this; a hang is a failure too. */
const REQUEST_LIMIT_MS = 30_000

const upstream = await startFakeUpstream()
const vars = {
  API_KEYS: KEY,
  ENVIRONMENT: "production",
  ENABLE_LOCAL_MODEL: "true",
  DEFAULT_MODEL: "local/preview",
  UPSTREAM_URL: upstream.url,
  UPSTREAM_TIMEOUT_MS: "5000",
  LOG_LEVEL: "Error"
}
const gateway = await startWranglerDev(
  ["npx", "wrangler", "dev"],
  process.cwd(),
  Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`])
)
const stop = async () => {
  gateway.stop()
  await upstream.close()
}

try {
  const seeds = await sampleSeeds(100, SEED)
  const statuses = new Map<number, number>()
  const started = performance.now()
  console.log(`fuzzing ${gateway.url} with ${RUNS} requests, seed ${SEED}`)
  const result = await fc.check(
    fc.asyncProperty(
      fuzzCase(seeds, KEY, ["local/preview", null, "replicate/flux-schnell", "no/such-model", "constructor"]),
      async (fuzz) => {
        const response = await fetch(toRequest(gateway.url, fuzz), { signal: AbortSignal.timeout(REQUEST_LIMIT_MS) })
        const verdict = await judge(response, fuzz.method)
        statuses.set(verdict.status, (statuses.get(verdict.status) ?? 0) + 1)
        if (verdict.violation !== undefined) throw new Error(verdict.violation)
      }
    ),
    { numRuns: RUNS, seed: SEED, endOnFailure: true }
  )
  const seconds = (performance.now() - started) / 1000
  console.log(`\n${result.numRuns} requests in ${seconds.toFixed(0)} s\n\nstatus  count`)
  for (const [status, count] of [...statuses].sort((a, b) => a[0] - b[0])) console.log(`${status}     ${count}`)
  const normal = await fetch(`${gateway.url}/v1/images/generations`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "local/preview", prompt: "still here", size: "64x64" })
  })
  console.log(`\na normal request afterwards: HTTP ${normal.status}`)
  if (result.failed) {
    console.log(`\nFAIL after ${result.numRuns} requests (seed ${SEED}):\n${fc.defaultReportMessage(result)}`)
    process.exitCode = 1
  } else if (normal.status !== 200) {
    console.log("\nFAIL: the gateway no longer answers a normal request")
    process.exitCode = 1
  } else {
    console.log("\nPASS: no 5xx, every error in OpenAI's shape with a request id")
  }
} finally {
  await stop()
}
