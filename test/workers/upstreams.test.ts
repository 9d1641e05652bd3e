import { describe, expect, inject, it } from "vitest"
import { call, decodeBase64, errorOf, eventOf, fakeImage, generate, steered, upstreamCalls } from "./helpers.ts"

describe("the openai kind, through the gateway (workerd, the fake OpenAI-compatible server)", () => {
  it("gets n images in one call with the instance's key and only the fields the model supports", async () => {
    const { id, prompt } = steered("bytes=5000")
    const response = await generate({ model: "fake/gpt-image", prompt, n: 3, quality: "high", style: "vivid", size: "1024x1024" })
    expect(response.status).toBe(200)
    const body = (await response.json()) as { data: Array<{ b64_json: string }>; output_format: string }
    expect(body.data).toHaveLength(3)
    expect(body.output_format).toBe("png")
    expect(decodeBase64(body.data[0]?.b64_json ?? "")).toEqual(await fakeImage("png", 5000))
    const { requests } = await upstreamCalls(id)
    expect(requests).toEqual([{ model: "gpt-image-1", prompt, n: 3, size: "1024x1024", quality: "high", api: "openai" }])
  })

  it("fetches an image the upstream answers with a url, and gives the client its bytes", async () => {
    const { prompt } = steered("answer=url format=webp bytes=3000")
    const response = await generate({ model: "fake/gpt-image", prompt })
    expect(response.status).toBe(200)
    const body = (await response.json()) as { data: Array<{ b64_json: string }>; output_format: string }
    expect(body.output_format).toBe("webp")
    expect(decodeBase64(body.data[0]?.b64_json ?? "")).toEqual(await fakeImage("webp", 3000))
  })
})

describe("fallback chains", () => {
  it("a primary that keeps failing is retried, then its fallback serves the request: the client sees 200", async () => {
    const { id, prompt } = steered("faults.primary-model=503,503,503,503")
    const response = await generate({ model: "fake/primary", prompt })
    expect(response.status).toBe(200)
    const calls = (await upstreamCalls(id)).requests.map((request) => request.model)
    expect(calls).toEqual(["primary-model", "primary-model", "primary-model", "backup-model"])
    expect(await eventOf(response)).toMatchObject({
      model: "fake/primary",
      upstream: "fake-backup",
      failovers: 1,
      status: 200,
      attempts: 4
    })
  })

  it("a rejection of the request itself (upstream 400) is the client's 400, and the fallback is never called", async () => {
    const { id, prompt } = steered("faults.primary-model=400")
    const response = await generate({ model: "fake/primary", prompt })
    expect(response.status).toBe(400)
    const error = await errorOf(response)
    expect(error).toMatchObject({ type: "invalid_request_error", code: "upstream_rejected" })
    expect(error.message).toContain("safety system")
    expect((await upstreamCalls(id)).requests.map((request) => request.model)).toEqual(["primary-model"])
  })

  it("an upstream that refuses our key (401: our configuration) fails over at once, without retries", async () => {
    const { id, prompt } = steered("")
    const response = await generate({ model: "fake/misconfigured", prompt })
    expect(response.status).toBe(200)
    expect((await upstreamCalls(id)).calls).toBe(1)
    expect(await eventOf(response)).toMatchObject({ upstream: "fake-backup", failovers: 1 })
  })

  it("when the whole chain fails the client gets the primary's failure", async () => {
    const { prompt } = steered("faults=500,500,500,500,500,500")
    const response = await generate({ model: "fake/primary", prompt })
    expect(response.status).toBe(502)
    expect((await errorOf(response)).code).toBe("upstream_error")
  })
})

describe("GET /v1/gateway/status lists every upstream instance", () => {
  it("with kind, base URL, circuit state and model count, never a key", async () => {
    const response = await call("/v1/gateway/status")
    const text = await response.text()
    expect(text).not.toContain("fake-openai-key")
    expect(text).not.toContain("not-the-key")
    const status = JSON.parse(text) as {
      upstreams: Array<{ id: string; kind: string; baseUrl: string | null; models: number; circuit: { state: string } }>
      models: Array<{ id: string; fallbacks: Array<string> }>
    }
    const byId = new Map(status.upstreams.map((upstream) => [upstream.id, upstream]))
    expect(byId.get("fake-openai")).toMatchObject({ kind: "openai", baseUrl: `${inject("fakeUpstreamUrl")}/v1/`, models: 2 })
    expect(byId.get("fake-openai")?.circuit.state).toBe("closed")
    expect(byId.get("ai-sdk")).toMatchObject({ kind: "ai-sdk", baseUrl: `${inject("fakeUpstreamUrl")}/` })
    expect(byId.get("local")).toMatchObject({ kind: "local", baseUrl: null })
    expect(status.models.find((model) => model.id === "fake/primary")?.fallbacks).toEqual(["fake/backup"])
  })
})
