import { decode as decodePng } from "fast-png"
import { describe, expect, it } from "vitest"
import { call, errorOf, generate, steered, upstreamCalls } from "./helpers.ts"

interface ImagesJson {
  created: number
  data: Array<{ b64_json?: string; url?: string }>
  output_format?: string
}

const bytesOf = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))

describe("POST /v1/images/generations against the fake upstream", () => {
  it("makes one upstream call per image and returns n images", async () => {
    const { id, prompt } = steered("")
    const response = await generate({ prompt, n: 3, model: "replicate/flux-schnell" })
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toMatch(/^application\/json/)
    expect(response.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/)
    const body = (await response.json()) as ImagesJson
    expect(body.data).toHaveLength(3)
    expect(body.output_format).toBe("png")
    expect(Number.isInteger(body.created)).toBe(true)
    expect(body.created).toBeLessThan(10_000_000_000)
    for (const image of body.data)
      expect(bytesOf(image.b64_json ?? "").slice(0, 4)).toEqual(new Uint8Array([0x89, 0x50, 0x4e, 0x47]))
    const { calls, requests } = await upstreamCalls(id)
    expect(calls).toBe(3)
    expect(requests[0]).toMatchObject({ provider: "replicate", modelId: "black-forest-labs/flux-schnell" })
  })

  it("maps size to the nearest aspect ratio and leaves auto to the model", async () => {
    const wide = steered("")
    await generate({ prompt: wide.prompt, size: "1792x1024" })
    expect((await upstreamCalls(wide.id)).requests[0]).toMatchObject({ aspectRatio: "16:9" })
    const square = steered("")
    await generate({ prompt: square.prompt, size: "512x512" })
    expect((await upstreamCalls(square.id)).requests[0]).toMatchObject({ aspectRatio: "1:1" })
    const auto = steered("")
    await generate({ prompt: auto.prompt, size: "auto" })
    const [request] = (await upstreamCalls(auto.id)).requests
    expect(request).not.toHaveProperty("aspectRatio")
    expect(request).toMatchObject({ provider: "replicate", modelId: "black-forest-labs/flux-1.1-pro-ultra" })
  })

  it("resolves the dall-e-3 alias to the openai provider", async () => {
    const { id, prompt } = steered("")
    const response = await generate({ prompt, model: "dall-e-3", quality: "hd", style: "natural", response_format: "b64_json" })
    expect(response.status).toBe(200)
    expect((await upstreamCalls(id)).requests[0]).toMatchObject({ provider: "openai", modelId: "dall-e-3" })
  })

  it("retries a 503 and succeeds on the second attempt", async () => {
    const { id, prompt } = steered("faults=503")
    const response = await generate({ prompt })
    expect(response.status).toBe(200)
    expect((await upstreamCalls(id)).calls).toBe(2)
  })

  it("honours 429 with Retry-After, then answers 429 with retry-after once its own retries are spent", async () => {
    const ok = steered("faults=429:1")
    expect((await generate({ prompt: ok.prompt })).status).toBe(200)
    expect((await upstreamCalls(ok.id)).calls).toBe(2)

    const limited = steered("faults=429:7,429:7,429:7")
    const response = await generate({ prompt: limited.prompt })
    expect(response.status).toBe(429)
    expect(response.headers.get("retry-after")).toBe("7")
    // The gateway already tried three times: an SDK that retried too would multiply that by its own retries.
    expect(response.headers.get("x-should-retry")).toBe("false")
    const error = await errorOf(response)
    expect(error.code).toBe("rate_limit_exceeded")
    expect((await upstreamCalls(limited.id)).calls).toBe(3)
  })

  it("does not retry an upstream 400 and answers 400 upstream_rejected with the upstream's short JSON error", async () => {
    const { id, prompt } = steered("faults=400")
    const response = await generate({ prompt })
    expect(response.status).toBe(400)
    const error = await errorOf(response)
    expect(error).toMatchObject({ type: "invalid_request_error", code: "upstream_rejected", param: "prompt" })
    expect(error.message).toContain("Invalid request parameters")
    expect((await upstreamCalls(id)).calls).toBe(1)
  })

  it("gives up on a hanging upstream after the timeout, without retrying", async () => {
    const { id, prompt } = steered("faults=hang")
    const started = Date.now()
    const response = await generate({ prompt })
    expect(response.status).toBe(504)
    expect(response.headers.get("x-should-retry")).toBe("false")
    expect((await errorOf(response)).code).toBe("upstream_timeout")
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400)
    expect((await upstreamCalls(id)).calls).toBe(1)
  })

  it("treats a 200 with HTML as malformed and never echoes the HTML", async () => {
    const { id, prompt } = steered("faults=html")
    const response = await generate({ prompt })
    expect(response.status).toBe(502)
    const error = await errorOf(response)
    expect(error.message).not.toMatch(/<html|secret internals/i)
    expect((await upstreamCalls(id)).calls).toBe(1)
  })

  it("retries an HTML 502 to the limit and answers 502 without the HTML", async () => {
    const { id, prompt } = steered("faults=html502,html502,html502")
    const response = await generate({ prompt })
    expect(response.status).toBe(502)
    const error = await errorOf(response)
    expect(error.message).toContain("HTTP 502")
    expect(error.message).toContain("3 attempts")
    expect(error.message).not.toMatch(/<html|secret internals|DOCTYPE/i)
    expect((await upstreamCalls(id)).calls).toBe(3)
  })

  it("answers 502 for a 200 without an image", async () => {
    const { prompt } = steered("faults=noimage")
    const response = await generate({ prompt })
    expect(response.status).toBe(502)
    expect((await errorOf(response)).message).toContain("without a usable image")
  })

  it.each([
    ["jpeg", "image/jpeg"],
    ["webp", "image/webp"]
  ])("detects %s from the bytes and serves it hosted as %s", async (format, mime) => {
    const { prompt } = steered(`format=${format}`)
    const b64 = (await (await generate({ prompt })).json()) as ImagesJson
    expect(b64.output_format).toBe(format)
    const url = (await (await generate({ prompt, response_format: "url" })).json()) as ImagesJson
    expect(url.data[0]?.b64_json).toBeUndefined()
    const hosted = await call(new URL(url.data[0]?.url ?? "").pathname, { key: null })
    expect(hosted.headers.get("content-type")).toBe(mime)
  })

  it("returns the images that succeeded and says how many failed", async () => {
    const { id, prompt } = steered("faults=400")
    const response = await generate({ prompt, n: 3 })
    expect(response.status).toBe(200)
    expect(response.headers.get("x-images-failed")).toBe("1")
    expect(((await response.json()) as ImagesJson).data).toHaveLength(2)
    expect((await upstreamCalls(id)).calls).toBe(3)
  })

  it("fails with the error when every image fails", async () => {
    const { id, prompt } = steered("faults=400,400")
    const response = await generate({ prompt, n: 2 })
    expect(response.status).toBe(400)
    expect((await upstreamCalls(id)).calls).toBe(2)
  })

  it("renders a real PNG with the offline model, deterministic per prompt and size", async () => {
    const request = { model: "local/preview", prompt: "a red fox in snow", size: "320x160" }
    const first = (await (await generate(request)).json()) as ImagesJson
    const again = (await (await generate(request)).json()) as ImagesJson
    const other = (await (await generate({ ...request, prompt: "a blue whale" })).json()) as ImagesJson
    const png = decodePng(bytesOf(first.data[0]?.b64_json ?? ""))
    expect([png.width, png.height]).toEqual([320, 160])
    expect(first.data[0]?.b64_json).toBe(again.data[0]?.b64_json)
    expect(other.data[0]?.b64_json).not.toBe(first.data[0]?.b64_json)
  })
})
