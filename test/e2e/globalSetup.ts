import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TestProject } from "vitest/node"
import { startFakeUpstream } from "../support/fakeUpstream.ts"
import { freePort } from "../support/freePort.ts"

declare module "vitest" {
  export interface ProvidedContext {
    gatewayUrl: string
    fakeUpstreamUrl: string
  }
}

const waitForHealth = async (url: string, child: ChildProcess, output: () => string) => {
  const deadline = Date.now() + 90_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}:\n${output()}`)
    try {
      const response = await fetch(`${url}/health`)
      if (response.ok) return
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`the gateway did not become healthy in time:\n${output()}`)
}

/**
 * Starts the gateway exactly as a developer does, with `npm start` (wrangler dev,
 * ENVIRONMENT=development, the development key), pointed at the fake upstream.
 */
export default async function setup(project: TestProject) {
  const upstream = await startFakeUpstream()
  const port = await freePort()
  const inspector = await freePort()
  // Its own local state (R2, the statistics Durable Object), so test traffic never lands in a developer's `npm start` data.
  const state = mkdtempSync(join(tmpdir(), "ai-image-gateway-e2e-"))
  let log = ""
  const child = spawn(
    "npm",
    [
      "start",
      "--",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(inspector),
      "--persist-to",
      state,
      "--var",
      `UPSTREAM_URL:${upstream.url}`,
      "--var",
      "UPSTREAM_BACKOFF_MS:20",
      "--var",
      "UPSTREAM_BACKOFF_MAX_MS:200",
      "--var",
      "UPSTREAM_TIMEOUT_MS:5000",
      "--var",
      "LOG_LEVEL:Warn"
    ],
    { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" } }
  )
  child.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()))
  const gatewayUrl = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, "SIGTERM")
      } catch {
        // already gone
      }
    }
    await upstream.close()
    rmSync(state, { recursive: true, force: true })
  }
  try {
    await waitForHealth(gatewayUrl, child, () => log)
  } catch (error) {
    await stop()
    throw error
  }
  project.provide("gatewayUrl", gatewayUrl)
  project.provide("fakeUpstreamUrl", upstream.url)
  return stop
}
