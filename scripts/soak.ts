/**
 * `npm run soak`: steady load against `wrangler dev` for SOAK_MINUTES (default 10) while the fake upstream
 * answers 1% of calls with 503 and never answers 0.2% of them. Reports what clients saw (only the hangs may
 * surface, as 504 once UPSTREAM_TIMEOUT_MS passes), whether the usage statistics counted every request sent,
 * and the memory of the workerd processes over the run. The passthrough (`bench/passthrough`) takes the same
 * load at the same time, from the same upstream: under `wrangler dev` every request grows workerd's
 * resident memory by itself, whatever the Worker does, so the gateway's growth is judged against it.
 * Loopback only; the load is bounded in time and by SOAK_CONNECTIONS closed-loop clients per Worker.
 */
import { join } from "node:path"
import { workerdResidentBytes } from "../bench/memory.ts"
import { startFakeUpstream } from "../test/support/fakeUpstream.ts"
import { type LocalWorker, startWranglerDev } from "../test/support/wranglerDev.ts"

const KEY = "soak-key"
const MINUTES = Number(process.env.SOAK_MINUTES ?? 10)
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 4)
const SAMPLE_MS = 15_000
const TIMEOUT_MS = 3000
/**
 * How much more the gateway's workerd may grow per request than the passthrough's under the same load: half
 * again as much, and never less than 2 KB per request more (should wrangler's own growth ever vanish).
 */
const allowedKbPerRequest = (passthrough: number) => passthrough + Math.max(2, passthrough / 2)

interface Sample {
  readonly minute: number
  /** Requests answered so far. */
  readonly requests: number
  readonly mb: number
}

/** Least-squares slope of `y` over `x`. */
const slope = (points: ReadonlyArray<readonly [number, number]>) => {
  const n = points.length
  if (n < 2) return 0
  const mx = points.reduce((sum, [x]) => sum + x, 0) / n
  const my = points.reduce((sum, [, y]) => sum + y, 0) / n
  const num = points.reduce((sum, [x, y]) => sum + (x - mx) * (y - my), 0)
  const den = points.reduce((sum, [x]) => sum + (x - mx) ** 2, 0)
  return den === 0 ? 0 : num / den
}

const upstream = await startFakeUpstream({ imageBytes: 64 * 1024, faultRates: { unavailable: 0.01, hang: 0.002 } })
const vars = {
  API_KEYS: KEY,
  ENVIRONMENT: "production",
  UPSTREAM_URL: upstream.url,
  UPSTREAM_TIMEOUT_MS: String(TIMEOUT_MS),
  UPSTREAM_BACKOFF_MS: "50",
  UPSTREAM_BACKOFF_MAX_MS: "500",
  // The breaker would turn a few unlucky hangs into fast 503s; the soak measures the gateway's steady state.
  CIRCUIT_FAILURES: "1000000",
  LOG_LEVEL: "Error"
}
const workers: Array<LocalWorker> = []
try {
  const gateway = await startWranglerDev(
    ["npx", "wrangler", "dev"],
    // SOAK_CWD: another checkout of the gateway, to compare two versions under the same load.
    process.env.SOAK_CWD ?? process.cwd(),
    Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`])
  )
  workers.push(gateway)
  const passthrough = await startWranglerDev(["npx", "wrangler", "dev"], join(import.meta.dirname, "../bench/passthrough"), [
    "--var",
    `UPSTREAM_URL:${upstream.url}`
  ])
  workers.push(passthrough)

  const generate = () =>
    fetch(`${gateway.url}/v1/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", "accept-encoding": "identity" },
      body: JSON.stringify({ model: "replicate/flux-schnell", prompt: "a soak test" }),
      signal: AbortSignal.timeout(60_000)
    })
  // The passthrough has no timeout of its own: the client gives up on a hang when the gateway would.
  const forward = () =>
    fetch(passthrough.url, {
      method: "POST",
      headers: { "content-type": "application/json", "accept-encoding": "identity" },
      body: JSON.stringify({ prompt: "a soak test", provider: "replicate", modelId: "black-forest-labs/flux-schnell" }),
      signal: AbortSignal.timeout(TIMEOUT_MS)
    })
  // Warm-up, not counted: compile, JIT, connection pools, the statistics object.
  for (let i = 0; i < 20; i++) {
    await (await generate()).arrayBuffer()
    // The upstream's faults reach the passthrough's client as they are (a 503, a hang it gives up on).
    await forward()
      .then((response) => response.arrayBuffer())
      .catch(() => undefined)
  }
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const statsBefore = (await (
    await fetch(`${gateway.url}/v1/gateway/stats?window=1h`, { headers: { authorization: `Bearer ${KEY}` } })
  ).json()) as {
    generations: number
  }

  const started = performance.now()
  const deadline = started + MINUTES * 60_000
  const minute = () => (performance.now() - started) / 60_000
  const drive = (worker: LocalWorker, send: () => Promise<Response>) => {
    const statuses = new Map<number | string, number>()
    const samples: Array<Sample> = []
    let sent = 0
    let answered = 0
    const sample = () =>
      samples.push({ minute: minute(), requests: answered, mb: workerdResidentBytes(worker.child.pid ?? 0) / 2 ** 20 })
    sample()
    const load = Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        while (performance.now() < deadline) {
          sent++
          try {
            const response = await send()
            await response.arrayBuffer()
            statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
          } catch (error) {
            const name = error instanceof Error ? error.name : "error"
            statuses.set(name, (statuses.get(name) ?? 0) + 1)
          }
          answered++
        }
      })
    )
    return { statuses, samples, sample, load, sent: () => sent }
  }
  console.log(
    `soaking ${gateway.url} for ${MINUTES} min with ${CONNECTIONS} connections (upstream: 1% 503, 0.2% never answers), beside the passthrough ${passthrough.url}`
  )
  const soaked = drive(gateway, generate)
  const baseline = drive(passthrough, forward)
  const sampler = setInterval(() => {
    soaked.sample()
    baseline.sample()
  }, SAMPLE_MS)
  await Promise.all([soaked.load, baseline.load])
  clearInterval(sampler)
  soaked.sample()
  baseline.sample()
  // Usage events are written in batches after the answers: give the last one time to land.
  await new Promise((resolve) => setTimeout(resolve, 5000))
  const statsAfter = (await (
    await fetch(`${gateway.url}/v1/gateway/stats?window=1h`, { headers: { authorization: `Bearer ${KEY}` } })
  ).json()) as {
    generations: number
  }
  const counted = statsAfter.generations - statsBefore.generations
  const seconds = (performance.now() - started) / 1000
  const sent = soaked.sent()
  const ok = soaked.statuses.get(200) ?? 0
  const unexpected = [...soaked.statuses].filter(([status]) => status !== 200 && status !== 504)

  /**
   * Growth per request answered over the whole run (each Worker serves its own rate), fitted to every sample:
   * the trend of the second half alone swings by tens of MB per minute as workerd returns memory.
   */
  const memory = (samples: ReadonlyArray<Sample>) => ({
    first: samples[0]?.mb ?? 0,
    last: samples.at(-1)?.mb ?? 0,
    peak: Math.max(...samples.map((s) => s.mb)),
    mbPerMinute: slope(samples.filter((s) => s.minute >= MINUTES / 2).map((s) => [s.minute, s.mb] as const)),
    kbPerRequest: slope(samples.map((s) => [s.requests, s.mb * 1024] as const))
  })
  const gatewayMemory = memory(soaked.samples)
  const baselineMemory = memory(baseline.samples)
  const answers = (statuses: ReadonlyMap<number | string, number>) =>
    Object.fromEntries([...statuses].map(([status, count]) => [String(status), count]))
  const describe = (name: string, m: ReturnType<typeof memory>) =>
    console.log(
      `${name}: ${m.first.toFixed(0)} MB at the start, ${m.last.toFixed(0)} MB at the end, ${m.peak.toFixed(0)} MB peak; ${m.kbPerRequest.toFixed(1)} KB per request over the run; ${m.mbPerMinute.toFixed(1)} MB/min over the second half`
    )

  console.log(`\n${sent} requests in ${seconds.toFixed(0)} s (${(sent / seconds).toFixed(1)} req/s)`)
  console.log("client-visible answers:", answers(soaked.statuses))
  console.log(`statistics: ${counted} generations recorded for ${sent} sent`)
  console.log(`passthrough, the same load beside it: ${baseline.sent()} requests; answers`, answers(baseline.statuses))
  console.log(`workerd memory (${soaked.samples.length} samples each)`)
  describe("  gateway    ", gatewayMemory)
  describe("  passthrough", baselineMemory)
  const checks: Array<[string, boolean]> = [
    ["only 200 and 504 (the hangs) reach clients", unexpected.length === 0],
    ["most requests succeed", ok >= sent * 0.99],
    [
      `the gateway's workerd grows per request at most half again as much as the passthrough's (${allowedKbPerRequest(baselineMemory.kbPerRequest).toFixed(1)} KB)`,
      gatewayMemory.kbPerRequest <= allowedKbPerRequest(baselineMemory.kbPerRequest)
    ],
    ["the statistics counted every request sent", counted === sent]
  ]
  for (const [name, passed] of checks) console.log(`${passed ? "PASS" : "FAIL"}  ${name}`)
  process.exitCode = checks.every(([, passed]) => passed) ? 0 : 1
} finally {
  for (const worker of workers) worker.stop()
  await upstream.close()
}
