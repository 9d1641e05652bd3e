import { describe, expect, it } from "vitest"
import { call, generate, steered, upstreamCalls } from "../workers/helpers.ts"

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
})
