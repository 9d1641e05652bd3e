import { describe, expect, it } from "vitest"
import { call, fakeImage, generate, steered, upstreamCalls } from "../workers/helpers.ts"

interface ImagesJson {
  data: Array<{ b64_json?: string; url?: string }>
}

describe("opt-in generation cache (CACHE_TTL_SECONDS=3600)", () => {
  it("answers an identical request from R2 without calling the upstream", async () => {
    // vary=1: every upstream call draws a different image, so equal bytes can only come from the cache.
    const { id, prompt } = steered("format=jpeg bytes=3000 vary=1")
    const request = { model: "replicate/flux-schnell", prompt, n: 2, size: "1024x1024" }
    const miss = await generate(request)
    expect(miss.headers.get("x-cache")).toBe("MISS")
    const first = (await miss.json()) as ImagesJson
    expect((await upstreamCalls(id)).calls).toBe(2)

    const hit = await generate(request)
    expect(hit.headers.get("x-cache")).toBe("HIT")
    const second = (await hit.json()) as ImagesJson
    expect(new Set(first.data.map((image) => image.b64_json)).size).toBe(2)
    expect(second.data.map((image) => image.b64_json)).toEqual(first.data.map((image) => image.b64_json))
    expect((await upstreamCalls(id)).calls).toBe(2)

    // the same images, hosted, for a url request with the same parameters
    const urls = (await (await generate({ ...request, response_format: "url" })).json()) as ImagesJson
    const hosted = await call(new URL(urls.data[0]?.url ?? "").pathname, { key: null })
    expect(hosted.headers.get("content-type")).toBe("image/jpeg")
    expect((await upstreamCalls(id)).calls).toBe(2)
  })

  it("aliases share entries; other parameters, and Cache-Control: no-cache, miss", async () => {
    const { id, prompt } = steered("vary=1")
    const miss = await generate({ model: "dall-e-3", prompt })
    expect(miss.headers.get("x-cache")).toBe("MISS")
    const cached = ((await miss.json()) as ImagesJson).data[0]?.b64_json
    expect((await generate({ model: "openai/dall-e-3", prompt })).headers.get("x-cache")).toBe("HIT")
    expect((await generate({ model: "dall-e-3", prompt, size: "1792x1024" })).headers.get("x-cache")).toBe("MISS")
    const bypass = await generate(
      { model: "dall-e-3", prompt },
      { headers: { "content-type": "application/json", "cache-control": "no-cache" } }
    )
    expect(bypass.headers.get("x-cache")).toBe("BYPASS")
    expect(((await bypass.json()) as ImagesJson).data[0]?.b64_json).not.toBe(cached)
    expect((await upstreamCalls(id)).calls).toBe(3)
  })

  it("a miss asked for url answers with the hosted copies; a hit's created is in seconds, as a miss's", async () => {
    const { prompt } = steered("format=jpeg bytes=3000")
    const request = { model: "replicate/flux-schnell", prompt, response_format: "url" }
    const miss = await generate(request)
    expect(miss.headers.get("x-cache")).toBe("MISS")
    const missed = (await miss.json()) as ImagesJson & { created: number }
    const url = new URL(missed.data[0]?.url ?? "")
    expect(url.pathname).toMatch(/^\/images\/[0-9a-f]{32}\.jpg$/)
    const hosted = await call(url.pathname, { key: null })
    expect(new Uint8Array(await hosted.arrayBuffer())).toEqual(await fakeImage("jpeg", 3000))

    const hit = await generate(request)
    expect(hit.headers.get("x-cache")).toBe("HIT")
    const body = (await hit.json()) as ImagesJson & { created: number }
    expect(body.data[0]?.url).toBe(missed.data[0]?.url)
    expect(Math.abs(body.created - Date.now() / 1000)).toBeLessThan(600)
    expect(body.created).toBeGreaterThanOrEqual(missed.created)
  })

  it("a miss that lost an image says how many in x-images-failed and images_failed; one that lost none has no such header", async () => {
    const { prompt } = steered("faults=ok,400")
    const partial = await generate({ model: "replicate/flux-schnell", prompt, n: 2 })
    expect(partial.status).toBe(200)
    expect(partial.headers.get("x-images-failed")).toBe("1")
    expect(await partial.json()).toMatchObject({ data: [{ b64_json: expect.any(String) }], images_failed: 1 })
    const whole = await generate({ model: "replicate/flux-schnell", prompt: steered("format=png").prompt, n: 2 })
    expect(whole.headers.get("x-cache")).toBe("MISS")
    expect(whole.headers.get("x-images-failed")).toBeNull()
    expect(((await whole.json()) as ImagesJson).data).toHaveLength(2)
  })
})
