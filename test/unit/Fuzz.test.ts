import { ConfigProvider, Context } from "effect"
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { makeHandler } from "../../src/App.ts"
import { UsageDb } from "../../src/durable/UsageDb.ts"
import { WorkerContext } from "../../src/services/WorkerContext.ts"
import { fuzzCase, judge, sampleSeeds, toRequest } from "../support/fuzzCases.ts"
import { nodeSql, usageNamespace } from "../support/nodeStores.ts"

/**
 * About 1,000 generated requests against the whole gateway, in-process. The seed is fixed so `npm test` is
 * repeatable; `FUZZ_SEED=<n>` explores others, and `npm run fuzz` runs 10,000 or more against `wrangler dev`.
 */
const KEY = "fuzz-key"
const RUNS = Number(process.env.FUZZ_RUNS ?? 1000)
const SEED = Number(process.env.FUZZ_SEED ?? 20261130)

/** The statistics store on Node's own SQLite, so the cockpit's routes answer and fuzzed events are written too. */
const store = new UsageDb(nodeSql())
const usage = usageNamespace(store)

const app = makeHandler(
  ConfigProvider.fromUnknown({ API_KEYS: KEY, ENABLE_LOCAL_MODEL: "true", DEFAULT_MODEL: "local/preview", LOG_LEVEL: "None" }),
  { usage }
)
afterAll(() => app.dispose())
const pending: Array<Promise<unknown>> = []
const context = Context.make(WorkerContext, { waitUntil: (promise) => pending.push(promise) }) as Context.Context<never>
const send = (request: Request) => app.handler(request, context)

describe("fuzzer (fast-check over requests sampled from the contract's Schemas)", () => {
  it(`${RUNS} mutated requests: never a 5xx, every error in OpenAI's shape with a request id, and the gateway still answers`, async () => {
    const seeds = await sampleSeeds(40, SEED)
    const statuses = new Map<number, number>()
    await fc.assert(
      fc.asyncProperty(fuzzCase(seeds, KEY, ["local/preview", null, "no/such-model", "constructor", ""]), async (fuzz) => {
        const verdict = await judge(await send(toRequest("http://gateway.test", fuzz)), fuzz.method)
        statuses.set(verdict.status, (statuses.get(verdict.status) ?? 0) + 1)
        if (verdict.violation !== undefined) throw new Error(`${verdict.violation} for ${JSON.stringify(fuzz).slice(0, 300)}`)
      }),
      { numRuns: RUNS, seed: SEED }
    )
    // The runs reached the API's answers, not one status only: successes, validation errors, auth errors.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(RUNS / 20)
    expect(statuses.get(400) ?? 0).toBeGreaterThan(RUNS / 20)
    expect(statuses.get(401) ?? 0).toBeGreaterThan(0)
    const normal = await send(
      new Request("http://gateway.test/v1/images/generations", {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "local/preview", prompt: "still here", size: "64x64" })
      })
    )
    expect(normal.status).toBe(200)
    await normal.arrayBuffer() // the answer's usage event is recorded when its body ends
    // Every request the fuzzer sent to the API reached the statistics (writes happen after the answers).
    await Promise.all(pending)
    expect(store.count("events")).toBeGreaterThan(RUNS / 2)
  }, 300_000)
})
