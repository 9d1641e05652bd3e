import { describe, expect, inject, it, onTestFinished } from "vitest"
import {
  call,
  errorOf,
  eventOf,
  eventWhere,
  generate,
  isolatedGateway,
  jsonPost,
  recent,
  steered,
  upstreamReaches
} from "./helpers.ts"

/**
 * Usage statistics in the real runtime: events go to the SQLite Durable Object
 * through ctx.waitUntil after the response, so the tests poll for them.
 */

describe("usage statistics", () => {
  it("records a generation with its model, upstream, images, attempts and latency, without the prompt", async () => {
    const response = await generate({ model: "dall-e-3", prompt: "a red fox", n: 2, size: "64x64" })
    expect(response.status).toBe(200)
    await response.arrayBuffer()
    const event = await eventOf(response)
    expect(event).toMatchObject({
      method: "POST",
      path: "/v1/images/generations",
      endpoint: "images",
      upstream: "ai-sdk",
      status: 200,
      images: 2,
      failedImages: 0,
      attempts: 2,
      error: null,
      stream: false,
      prompt: null
    })
    expect(event.model).not.toBe("dall-e-3") // recorded after alias resolution
    expect(event.latencyMs).toBeGreaterThanOrEqual(0)
  })

  it("records failures with the error code the client received", async () => {
    const { prompt } = steered("faults=400")
    const failed = await generate({ model: "replicate/flux-schnell", prompt })
    expect(failed.status).toBe(400)
    expect(await eventOf(failed)).toMatchObject({
      status: 400,
      error: "upstream_rejected",
      upstream: "ai-sdk",
      attempts: 1,
      failovers: 0,
      images: 0,
      failedImages: 1
    })

    const unauthorized = await call("/v1/models", { key: "wrong" })
    expect(unauthorized.status).toBe(401)
    expect(await eventOf(unauthorized)).toMatchObject({ endpoint: "unauthorized", status: 401, error: "invalid_api_key" })
    // A request without a valid key is no failed generation: it is counted apart, whatever it aimed at.
    const anonymousGeneration = await generate({ model: "local/preview", prompt: "x" }, { key: "wrong" })
    expect(await eventOf(anonymousGeneration)).toMatchObject({ endpoint: "unauthorized", status: 401 })
    const nowhere = await call("/v1/no/such/route")
    expect(await eventOf(nowhere)).toMatchObject({ endpoint: "unknown", status: 404, error: "unknown_url" })

    const unknown = await generate({ model: "no/such-model", prompt: "x" })
    expect(await eventOf(unknown)).toMatchObject({
      status: 404,
      error: "model_not_found",
      model: "no/such-model",
      upstream: null
    })

    // A request that does not decode is recorded with the code (else the type) its 400 carried.
    const outOfRange = await generate({ model: "local/preview", prompt: "x", n: 99 })
    expect(await errorOf(outOfRange)).toMatchObject({ param: "n", code: "invalid_value" })
    expect(await eventOf(outOfRange)).toMatchObject({ status: 400, error: "invalid_value" })
    const missing = await call("/v1/images/generations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}"
    })
    expect(await errorOf(missing)).toMatchObject({ param: "prompt", code: null })
    expect(await eventOf(missing)).toMatchObject({ status: 400, error: "invalid_request_error" })
  })

  it("records a stream when it ends, with the error it reported in-band", async () => {
    const { prompt } = steered("faults=400")
    const response = await generate({ model: "replicate/flux-schnell", prompt, stream: true })
    expect(response.status).toBe(200)
    expect(await response.text()).toContain("event: error")
    expect(await eventOf(response)).toMatchObject({ stream: true, status: 400, error: "upstream_rejected", images: 0 })

    const ok = await generate({ model: "local/preview", prompt: "a boat", stream: true, n: 2, size: "64x64" })
    await ok.text()
    expect(await eventOf(ok)).toMatchObject({ stream: true, status: 200, images: 2, upstream: "local", error: null })
  })

  it("records an images stream the client cut off as 499 client_closed_request", async () => {
    const { id, prompt } = steered("hold=1")
    const response = await generate({ model: "fake/patient", prompt, stream: true })
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    await upstreamReaches(id, { inFlight: 1 })
    await reader.cancel()
    expect(await eventOf(response)).toMatchObject({ stream: true, status: 499, error: "client_closed_request", images: 0 })
  })

  it("records a request whose client went away before the answer began as 499, and its upstream call is cancelled", async () => {
    const { id, prompt } = steered("hold=1")
    const client = new AbortController()
    const answer = generate({ model: "fake/patient", prompt, response_format: "b64_json" }, { signal: client.signal })
    answer.catch(() => {}) // it rejects with the abort
    await upstreamReaches(id, { inFlight: 1 })
    client.abort()
    expect(await upstreamReaches(id, { aborted: 1 })).toMatchObject({ aborted: 1 })
    // No response, so no request id: the only non-streamed 499 of this model.
    const event = await eventWhere((e) => e.model === "fake/patient" && e.status === 499 && !e.stream, "the aborted request")
    expect(event).toMatchObject({ endpoint: "images", status: 499, error: "client_closed_request", images: 0 })
  })

  it("does not record the cockpit's own reads", async () => {
    const response = await call("/v1/gateway/stats?window=24h")
    const requestId = response.headers.get("x-request-id")
    await response.arrayBuffer()
    await eventOf(await generate({ model: "local/preview", prompt: "marker", size: "64x64" }))
    expect((await recent()).some((event) => event.requestId === requestId)).toBe(false)
  })

  it("rejects a bad window or limit with a 400 naming the field, and a missing key with a 401", async () => {
    const window = await call("/v1/gateway/stats?window=2y")
    expect(window.status).toBe(400)
    expect((await errorOf(window)).param).toBe("window")
    const limit = await call("/v1/gateway/requests?limit=9999")
    expect(limit.status).toBe(400)
    expect((await errorOf(limit)).param).toBe("limit")
    const anonymous = await call("/v1/gateway/stats", { key: null })
    expect(anonymous.status).toBe(401)
  })
})

describe("GET /v1/gateway/status", () => {
  it("shows upstreams with health, configuration and the catalogue, and no secret", async () => {
    await eventOf(await generate({ model: "local/preview", prompt: "status check", size: "64x64" }))
    const response = await call("/v1/gateway/status")
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text).not.toContain("test-key")
    expect(text).not.toContain("second-key")
    const status = JSON.parse(text)
    expect(status.version).toMatch(/^\d+\.\d+\.\d+$/)
    expect(status.environment).toBe("production")
    const aiSdk = status.upstreams.find((upstream: { id: string }) => upstream.id === "ai-sdk")
    expect(aiSdk).toMatchObject({ kind: "ai-sdk", baseUrl: `${new URL(inject("fakeUpstreamUrl")).origin}/` })
    const local = status.upstreams.find((upstream: { id: string }) => upstream.id === "local")
    expect(local.health.last.status).toBe(200)
    expect(local.health.lastHour.requests).toBeGreaterThan(0)
    expect(status.config).toMatchObject({
      retry: { maxAttempts: 3, backoffMs: 20, backoffMaxMs: 200 },
      upstreamTimeoutMs: 1500,
      hostedImages: { enabled: true, ttlHours: 24 },
      cache: { enabled: false },
      usageStats: true,
      logPrompts: false
    })
    const dalle = status.models.find((model: { aliases: Array<string> }) => model.aliases.includes("dall-e-3"))
    expect(dalle.provider).toBeTypeOf("string")
    expect(status.statsError).toBeNull()
  })
})

describe("GET /v1/gateway/status, each upstream's health", () => {
  it("is that upstream's own last hour: its last answer, or null when it has had none", async () => {
    const gateway = isolatedGateway()
    onTestFinished(gateway.dispose)
    const local = await gateway.call(
      "/v1/images/generations",
      jsonPost({ model: "local/preview", prompt: "health", size: "64x64" })
    )
    await local.arrayBuffer()
    const rejected = await gateway.call(
      "/v1/images/generations",
      jsonPost({ model: "replicate/flux-schnell", prompt: steered("faults=400").prompt })
    )
    expect(rejected.status).toBe(400)
    await rejected.arrayBuffer()
    await gateway.settled()
    const status = (await (await gateway.call("/v1/gateway/status")).json()) as {
      upstreams: Array<{ id: string; health: { last: { status: number } } | null }>
    }
    const health = new Map(status.upstreams.map((upstream) => [upstream.id, upstream.health]))
    expect(health.get("local")?.last.status).toBe(200)
    expect(health.get("ai-sdk")?.last.status).toBe(400)
    expect(health.get("fake-openai")).toBeNull()
  })
})

describe("POST /v1/gateway/probe", () => {
  const probe = (body: unknown) =>
    call("/v1/gateway/probe", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })

  it("runs one real generation and reports its outcome", async () => {
    const response = await probe({ model: "local/preview" })
    expect(response.status).toBe(200)
    const result = await response.json()
    expect(result).toMatchObject({
      model: "local/preview",
      upstream: "local",
      ok: true,
      attempts: 1,
      outputFormat: "png",
      error: null
    })
    expect(await eventOf(response)).toMatchObject({ endpoint: "probe", status: 200, images: 1 })
  })

  it("reports the image's exact size, its format and the attempts it took", async () => {
    // 4096 bytes are 5464 base64 characters, the last two padding: three quarters of the text would be 4098.
    const { prompt } = steered("format=jpeg bytes=4096 faults=503,ok")
    const response = await probe({ model: "replicate/flux-schnell", prompt })
    const report = (await response.json()) as { latencyMs: number }
    // Wall time of one retried call (backoff at most 200 ms in the tests), not a clock reading.
    expect(report.latencyMs).toBeGreaterThanOrEqual(0)
    expect(report.latencyMs).toBeLessThan(10_000)
    expect(report).toMatchObject({
      model: "replicate/flux-schnell",
      upstream: "ai-sdk",
      ok: true,
      attempts: 2,
      outputFormat: "jpeg",
      bytes: 4096,
      error: null
    })
  })

  it("reports a failing upstream as the error a client would get, and records it as one", async () => {
    const { prompt } = steered("faults=400")
    const response = await probe({ model: "replicate/flux-schnell", prompt })
    expect(response.status).toBe(200)
    const result = await response.json()
    expect(result).toMatchObject({ ok: false, error: { status: 400, code: "upstream_rejected" } })
    expect(await eventOf(response)).toMatchObject({ endpoint: "probe", status: 400, error: "upstream_rejected" })
  })

  it("answers 404 for an unknown model", async () => {
    const response = await probe({ model: "no/such" })
    expect(response.status).toBe(404)
    expect((await errorOf(response)).code).toBe("model_not_found")
  })
})
