import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test"
import { env } from "cloudflare:workers"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import worker from "../../src/main.ts"
import { call, errorOf, fakeImage, generate, KEY, steered } from "./helpers.ts"

const bucket = (env as unknown as { IMAGES: R2Bucket }).IMAGES
const bytesOf = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))

const hostedImage = async (directives = "format=jpeg bytes=5000") => {
  const { prompt } = steered(directives)
  const response = await generate({ prompt, model: "replicate/flux-schnell", response_format: "url" })
  const body = (await response.json()) as { data: Array<{ url: string }> }
  const b64 = (await (await generate({ prompt, model: "replicate/flux-schnell" })).json()) as {
    data: Array<{ b64_json: string }>
  }
  return { url: new URL(body.data[0]?.url ?? ""), bytes: bytesOf(b64.data[0]?.b64_json ?? ""), body: JSON.stringify(body) }
}

describe("hosted image URLs on R2", () => {
  it("answers response_format url with a short https URL under an unguessable id", async () => {
    const { url, body } = await hostedImage()
    expect(url.origin).toBe("https://gateway.test")
    expect(url.pathname).toMatch(/^\/images\/[0-9a-f]{32}\.jpg$/)
    expect(body.length).toBeLessThan(1024)
  })

  it("serves the image without a key, with type, length, ETag and immutable caching", async () => {
    const { url, bytes } = await hostedImage()
    const response = await call(url.pathname, { key: "some-other-apps-token" })
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toBe("image/jpeg")
    expect(response.headers.get("content-length")).toBe(String(bytes.length))
    expect(response.headers.get("etag")).toMatch(/^"/)
    const cacheControl = response.headers.get("cache-control") ?? ""
    expect(cacheControl).toMatch(/^public, max-age=\d+, immutable$/)
    expect(Number(/max-age=(\d+)/.exec(cacheControl)?.[1])).toBeLessThanOrEqual(24 * 3600)
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes)
    const cached = await call(url.pathname, { key: null, headers: { "if-none-match": response.headers.get("etag") ?? "" } })
    expect(cached.status).toBe(304)
  })

  it("supports HEAD and byte ranges", async () => {
    const { url, bytes } = await hostedImage()
    const head = await call(url.pathname, { method: "HEAD", key: null })
    expect(head.status).toBe(200)
    expect(head.headers.get("content-length")).toBe(String(bytes.length))
    expect((await head.arrayBuffer()).byteLength).toBe(0)
    const first = await call(url.pathname, { key: null, headers: { range: "bytes=0-9" } })
    expect(first.status).toBe(206)
    expect(first.headers.get("content-range")).toBe(`bytes 0-9/${bytes.length}`)
    expect(first.headers.get("content-length")).toBe("10")
    expect(new Uint8Array(await first.arrayBuffer())).toEqual(bytes.slice(0, 10))
    const suffix = await call(url.pathname, { key: null, headers: { range: "bytes=-5" } })
    expect(suffix.status).toBe(206)
    expect(suffix.headers.get("content-range")).toBe(`bytes ${bytes.length - 5}-${bytes.length - 1}/${bytes.length}`)
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(bytes.slice(-5))
    const open = await call(url.pathname, { key: null, headers: { range: `bytes=${bytes.length - 3}-` } })
    expect(open.status).toBe(206)
    expect(open.headers.get("content-length")).toBe("3")
    expect(new Uint8Array(await open.arrayBuffer())).toEqual(bytes.slice(-3))
  })

  it("answers a malformed Range with the whole image, and one past the end with 416", async () => {
    const { url, bytes } = await hostedImage()
    for (const range of ["bytes=abc", "bytes=5-2", "bytes=0-1,4-5", "items=0-9", "bytes=-"]) {
      const response = await call(url.pathname, { key: null, headers: { range } })
      expect(response.status, range).toBe(200)
      expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes)
    }
    const past = await call(url.pathname, { key: null, headers: { range: `bytes=${bytes.length}-` } })
    expect(past.status).toBe(416)
    expect(past.headers.get("content-range")).toBe(`bytes */${bytes.length}`)
    // A range asks for the size first: an image that does not exist is a 404 either way.
    const missing = await call(`/images/${"0".repeat(32)}.png`, { key: null, headers: { range: "bytes=0-9" } })
    expect(missing.status).toBe(404)
  })

  it("serves images so that no browser sniffs or runs them", async () => {
    const { url } = await hostedImage()
    for (const path of [url.pathname, `/images/${"0".repeat(32)}.png`]) {
      const response = await call(path, { key: null })
      expect(response.headers.get("x-content-type-options")).toBe("nosniff")
      expect(response.headers.get("content-security-policy")).toBe("default-src 'none'")
    }
  })

  it("404s unknown and malformed ids in OpenAI's error shape", async () => {
    for (const path of [`/images/${"0".repeat(32)}.png`, "/images/not-an-id.png", `/images/${"a".repeat(32)}.gif`]) {
      const response = await call(path, { key: null })
      expect(response.status).toBe(404)
      expect((await errorOf(response)).code).toBe("image_not_found")
    }
  })

  it("an expired image is unreachable at once and the scheduled handler deletes it", async () => {
    const expired = "e".repeat(32)
    await bucket.put(`images/${expired}`, new Uint8Array([1, 2, 3]), {
      httpMetadata: { contentType: "image/png" },
      customMetadata: { expiresAt: String(Date.now() - 1000), file: `${expired}.png` }
    })
    const { url } = await hostedImage()
    const liveKey = `images/${url.pathname.slice(8, 40)}`
    expect((await call(`/images/${expired}.png`, { key: null })).status).toBe(404)
    expect((await call(`/images/${expired}.png`, { method: "HEAD", key: null })).status).toBe(404)

    const ctx = createExecutionContext()
    await worker.scheduled?.(createScheduledController({ cron: "*/30 * * * *" }), env as never, ctx)
    await waitOnExecutionContext(ctx)
    expect(await bucket.head(`images/${expired}`)).toBeNull()
    expect(await bucket.head(liveKey)).not.toBeNull()
  })

  it("hosts each image of an n: 2 answer whole under its own URL, and counts no failures when none failed", async () => {
    // Images large enough to arrive in several reads: each must reach the bucket whole before its URL is written.
    const { prompt } = steered("format=jpeg bytes=200000")
    const response = await generate({ prompt, model: "replicate/flux-schnell", n: 2, response_format: "url" })
    expect(response.status).toBe(200)
    expect(response.headers.get("x-images-failed")).toBeNull()
    const body = (await response.json()) as { data: Array<Record<string, string>> }
    expect(Object.keys(body).sort()).toEqual(["created", "data", "output_format"])
    const urls = body.data.map((entry) => {
      expect(Object.keys(entry)).toEqual(["url"])
      return new URL(entry.url ?? "")
    })
    expect(new Set(urls.map((url) => url.pathname)).size).toBe(2)
    const expected = await fakeImage("jpeg", 200000)
    for (const url of urls) {
      expect(url.origin).toBe("https://gateway.test")
      const hosted = await call(url.pathname, { key: null })
      expect(hosted.headers.get("content-type")).toBe("image/jpeg")
      expect(new Uint8Array(await hosted.arrayBuffer())).toEqual(expected)
    }
  })

  it("chat replies use hosted URLs", async () => {
    const response = await call("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "local/preview", messages: [{ role: "user", content: "a kite --size 32x32" }] })
    })
    const completion = (await response.json()) as { choices: Array<{ message: { content: string } }> }
    expect(completion.choices[0]?.message.content).toMatch(/^!\[image 1\]\(https:\/\/gateway\.test\/images\/[0-9a-f]{32}\.png\)$/)
  })

  it("the official openai client reads data[0].url", async () => {
    const { exports } = await import("cloudflare:workers")
    const openai = new OpenAI({
      baseURL: "https://gateway.test/v1",
      apiKey: KEY,
      fetch: (input, init) => exports.default.fetch(new Request(input, init))
    })
    const images = await openai.images.generate({
      model: "local/preview",
      prompt: "a kite",
      response_format: "url",
      size: "64x64"
    })
    expect(images.data?.[0]?.url).toMatch(/^https:\/\/gateway\.test\/images\/[0-9a-f]{32}\.png$/)
  })
})
