/**
 * `npm run soak`: steady load against `wrangler dev` for SOAK_MINUTES (default 10) while the fake upstream
 * answers 1% of calls with 503 and never answers 0.2% of them. Reports what clients saw (only the hangs may
 * surface, as 504 once UPSTREAM_TIMEOUT_MS passes), the memory of the workerd processes over the run (start,
 * end, peak, and the trend of the samples), and whether the usage statistics counted every request sent.
 * Loopback only; the load is bounded in time and by SOAK_CONNECTIONS closed-loop clients.
 */
import { readFileSync } from "node:fs"
import { startFakeUpstream } from "../test/support/fakeUpstream.ts"
import { startWranglerDev } from "../test/support/wranglerDev.ts"

const KEY = "soak-key"
const MINUTES = Number(process.env.SOAK_MINUTES ?? 10)
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 4)
const SAMPLE_MS = 15_000
const TIMEOUT_MS = 3000

/** Resident memory (MB) of every workerd process below `pid`, read from /proc. */
const workerdRssMb = (pid: number): number => {
  let total = 0
  const visit = (id: number) => {
    try {
      const status = readFileSync(`/proc/${id}/status`, "utf8")
      if (/^Name:\s*workerd/m.test(status)) total += Number(/^VmRSS:\s*(\d+)/m.exec(status)?.[1] ?? 0) / 1024
      const children = readFileSync(`/proc/${id}/task/${id}/children`, "utf8").trim()
      for (const child of children.split(/\s+/).filter(Boolean)) visit(Number(child))
    } catch {
      // the process ended
    }
  }
  visit(pid)
  return total
}

/** Least-squares slope of the samples, in MB per minute. */
const slope = (samples: ReadonlyArray<{ readonly minute: number; readonly mb: number }>) => {
  const n = samples.length
  if (n < 2) return 0
  const mx = samples.reduce((sum, s) => sum + s.minute, 0) / n
  const my = samples.reduce((sum, s) => sum + s.mb, 0) / n
  const num = samples.reduce((sum, s) => sum + (s.minute - mx) * (s.mb - my), 0)
  const den = samples.reduce((sum, s) => sum + (s.minute - mx) ** 2, 0)
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
const gateway = await startWranglerDev(
  ["npx", "wrangler", "dev"],
  // SOAK_CWD: another checkout of the gateway, to compare two versions under the same load.
  process.env.SOAK_CWD ?? process.cwd(),
  Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`])
)

try {
  const pid = gateway.child.pid ?? 0
  const generate = () =>
    fetch(`${gateway.url}/v1/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", "accept-encoding": "identity" },
      body: JSON.stringify({ model: "replicate/flux-schnell", prompt: "a soak test" }),
      signal: AbortSignal.timeout(60_000)
    })
  // Warm-up, not counted: compile, JIT, connection pools, the statistics object.
  for (let i = 0; i < 20; i++) await (await generate()).arrayBuffer()
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const statsBefore = (await (
    await fetch(`${gateway.url}/v1/gateway/stats?window=1h`, { headers: { authorization: `Bearer ${KEY}` } })
  ).json()) as {
    generations: number
  }

  const started = performance.now()
  const deadline = started + MINUTES * 60_000
  const statuses = new Map<number | string, number>()
  const samples: Array<{ minute: number; mb: number }> = [{ minute: 0, mb: workerdRssMb(pid) }]
  let sent = 0
  const sampler = setInterval(
    () => samples.push({ minute: (performance.now() - started) / 60_000, mb: workerdRssMb(pid) }),
    SAMPLE_MS
  )
  console.log(`soaking ${gateway.url} for ${MINUTES} min with ${CONNECTIONS} connections (upstream: 1% 503, 0.2% never answers)`)
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) {
        sent++
        try {
          const response = await generate()
          await response.arrayBuffer()
          statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
        } catch (error) {
          const name = error instanceof Error ? error.name : "error"
          statuses.set(name, (statuses.get(name) ?? 0) + 1)
        }
      }
    })
  )
  clearInterval(sampler)
  samples.push({ minute: (performance.now() - started) / 60_000, mb: workerdRssMb(pid) })
  // Usage events are written in batches after the answers: give the last one time to land.
  await new Promise((resolve) => setTimeout(resolve, 5000))
  const statsAfter = (await (
    await fetch(`${gateway.url}/v1/gateway/stats?window=1h`, { headers: { authorization: `Bearer ${KEY}` } })
  ).json()) as {
    generations: number
  }
  const counted = statsAfter.generations - statsBefore.generations
  const seconds = (performance.now() - started) / 1000
  const ok = statuses.get(200) ?? 0
  const unexpected = [...statuses].filter(([status]) => status !== 200 && status !== 504)
  const peak = Math.max(...samples.map((s) => s.mb))
  const first = samples[0]?.mb ?? 0
  const last = samples.at(-1)?.mb ?? 0
  // The trend of the second half: a warm isolate's memory should be flat there, whatever the first minutes did.
  const secondHalf = samples.filter((s) => s.minute >= MINUTES / 2)
  const trend = slope(secondHalf)

  console.log(`\n${sent} requests in ${seconds.toFixed(0)} s (${(sent / seconds).toFixed(1)} req/s)`)
  console.log("client-visible answers:", Object.fromEntries([...statuses].map(([status, count]) => [String(status), count])))
  console.log(
    `workerd memory: ${first.toFixed(0)} MB at the start, ${last.toFixed(0)} MB at the end, ${peak.toFixed(0)} MB peak; trend over the second half ${trend.toFixed(2)} MB/min (${samples.length} samples)`
  )
  console.log(`statistics: ${counted} generations recorded for ${sent} sent`)
  const checks: Array<[string, boolean]> = [
    ["only 200 and 504 (the hangs) reach clients", unexpected.length === 0],
    ["most requests succeed", ok >= sent * 0.99],
    ["no memory growth in the second half (< 2 MB/min)", trend < 2],
    ["the statistics counted every request sent", counted === sent]
  ]
  for (const [name, passed] of checks) console.log(`${passed ? "PASS" : "FAIL"}  ${name}`)
  process.exitCode = checks.every(([, passed]) => passed) ? 0 : 1
} finally {
  gateway.stop()
  await upstream.close()
}
