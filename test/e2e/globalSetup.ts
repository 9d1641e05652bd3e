import type { ChildProcess } from "node:child_process"
import type { TestProject } from "vitest/node"
import { E2E_KEYS } from "../support/e2eKeys.ts"
import { FAKE_OPENAI_KEY, startFakeUpstream } from "../support/fakeUpstream.ts"
import { startWranglerDev } from "../support/wranglerDev.ts"

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
  const gateway = await startWranglerDev(["npm", "start", "--"], process.cwd(), [
    "--var",
    `UPSTREAM_URL:${upstream.url}`,
    "--var",
    "UPSTREAM_BACKOFF_MS:20",
    "--var",
    "UPSTREAM_BACKOFF_MAX_MS:200",
    "--var",
    "UPSTREAM_TIMEOUT_MS:5000",
    "--var",
    "LOG_LEVEL:Warn",
    // An OpenAI-compatible upstream (the fake), as a user adds one: an instance, its secret, a model with a fallback.
    "--var",
    `UPSTREAMS:${JSON.stringify([{ id: "my-openai", kind: "openai", baseUrl: `${upstream.url}/v1`, apiKey: "MY_OPENAI_KEY" }])}`,
    "--var",
    `MY_OPENAI_KEY:${FAKE_OPENAI_KEY}`,
    // Named keys beside the development key: the cockpit's Keys panel and a user key's view.
    "--var",
    `KEYS:${JSON.stringify(E2E_KEYS)}`,
    "--var",
    `MODELS:${JSON.stringify([
      {
        id: "my-openai/gpt-image-1",
        upstream: "my-openai",
        upstreamModelId: "gpt-image-1",
        maxN: 4,
        fallbacks: ["local/preview"]
      }
    ])}`
  ])
  const stop = async () => {
    gateway.stop()
    await upstream.close()
  }
  try {
    await waitForHealth(gateway.url, gateway.child, gateway.log)
  } catch (error) {
    await stop()
    throw error
  }
  project.provide("gatewayUrl", gateway.url)
  project.provide("fakeUpstreamUrl", upstream.url)
  return stop
}
