import { exports } from "cloudflare:workers"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import {
  decodeBase64,
  fakeImage,
  generate,
  isolatedGateway,
  jsonPost,
  KEY,
  releaseUpstream,
  steered,
  upstreamCalls,
  upstreamReaches
} from "./helpers.ts"

/**
 * A non-streamed images answer is written as its images finish: committed (200) on the first image, each
 * later image written when it is complete and then let go. What buffering guaranteed still holds.
 */
interface ImagesJson {
  readonly data: ReadonlyArray<{ readonly b64_json?: string }>
  readonly images_failed?: number
  readonly output_format?: string
}

const workerFetch = (input: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(input, init))

describe("answers written as their images finish", () => {
  it("commits on the first image and leaves out, and counts, images that fail after it", async () => {
    // The first call answers at once; the two others are held until the first image has reached the client.
    const { id, prompt } = steered("bytes=4096 faults=ok,400~hold,400~hold")
    const response = await generate({ model: "fake/patient", prompt, n: 3 })
    expect(response.status).toBe(200)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    let text = ""
    while (!text.includes('"}')) {
      const chunk = await reader.read()
      if (chunk.done) break
      text += decoder.decode(chunk.value, { stream: true })
    }
    expect(text).toMatch(/^\{"created":\d+,"data":\[\{"b64_json":"/)
    expect((await upstreamCalls(id)).calls).toBe(3)
    await releaseUpstream(id)
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      text += decoder.decode(chunk.value, { stream: true })
    const body = JSON.parse(text) as ImagesJson
    expect(body.data).toHaveLength(1)
    expect(body.images_failed).toBe(2)
    expect(decodeBase64(body.data[0]?.b64_json ?? "")).toEqual(await fakeImage("png", 4096))
  })

  it("never passes on a truncated upstream answer as an image", async () => {
    const { prompt } = steered("bytes=4096 faults=ok,cut")
    const response = await generate({ model: "fake/patient", prompt, n: 2 })
    expect(response.status).toBe(200)
    const body = (await response.json()) as ImagesJson
    expect(body.data).toHaveLength(1)
    expect(body.images_failed).toBe(1)
    expect(decodeBase64(body.data[0]?.b64_json ?? "")).toEqual(await fakeImage("png", 4096))
    // Every image truncated: the normal HTTP error, before any byte.
    const all = await generate({ model: "fake/patient", prompt: steered("faults=cut,cut").prompt, n: 2 })
    expect(all.status).toBe(502)
  })

  it("a client that goes away mid-answer cancels the calls still running, and is recorded as 499", async () => {
    // A gateway of its own, called directly: the calls end by the gateway's cancel, not by the runtime's.
    const { call, settled, dispose } = isolatedGateway()
    const { id, prompt } = steered("bytes=4096 faults=ok,hang,hang")
    const response = await call("/v1/images/generations", jsonPost({ model: "fake/patient", prompt, n: 3 }))
    expect(response.status).toBe(200)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    await upstreamReaches(id, { inFlight: 2 })
    await reader.cancel()
    expect(await upstreamReaches(id, { aborted: 2 })).toMatchObject({ calls: 3, inFlight: 0 })
    await settled()
    const events = ((await (await call("/v1/gateway/requests?limit=5")).json()) as { data: Array<Record<string, unknown>> }).data
    expect(events[0]).toMatchObject({ status: 499, error: "client_closed_request", stream: false, images: 1 })
    await dispose()
  })

  it("the openai SDK reads answers written this way, with a late failure in them (the AI SDK: in e2e)", async () => {
    const openai = new OpenAI({ baseURL: "https://gateway.test/v1", apiKey: KEY, fetch: workerFetch })
    const images = await openai.images.generate({
      model: "fake/patient",
      prompt: steered("bytes=2048 faults=ok,ok,400").prompt,
      n: 3
    })
    expect(images.data).toHaveLength(2)
    expect(images.output_format).toBe("png")
  })
})

/**
 * One image (`n: 1`, `b64_json`) from an upstream whose answer is large is passed through as it arrives: the
 * 200 is committed once its first bytes are known to be an image, and a tail that goes wrong later ends the
 * body broken, never as a valid answer.
 */
describe("one image passed through as it arrives", () => {
  const BYTES = 300_000 // 400 KB of base64: past the bytes read before committing

  it("writes the upstream's image byte for byte, and the openai SDK reads it", async () => {
    const openai = new OpenAI({ baseURL: "https://gateway.test/v1", apiKey: KEY, fetch: workerFetch })
    const images = await openai.images.generate({
      model: "replicate/flux-schnell",
      prompt: steered(`bytes=${BYTES} format=webp faults=ok`).prompt
    })
    expect(images.data).toHaveLength(1)
    expect(images.output_format).toBe("webp")
    expect(decodeBase64(images.data?.[0]?.b64_json ?? "")).toEqual(await fakeImage("webp", BYTES))
  })

  it("does the same from an OpenAI-compatible upstream, and ends the body broken when its answer breaks off", async () => {
    const openai = new OpenAI({ baseURL: "https://gateway.test/v1", apiKey: KEY, fetch: workerFetch })
    const images = await openai.images.generate({
      model: "fake/gpt-image",
      prompt: steered(`bytes=${BYTES} format=png`).prompt
    })
    expect(decodeBase64(images.data?.[0]?.b64_json ?? "")).toEqual(await fakeImage("png", BYTES))
    const cut = await generate({ model: "fake/gpt-image", prompt: steered(`bytes=${BYTES} faults=cut`).prompt })
    expect(cut.status).toBe(200)
    await expect(cut.text()).rejects.toThrow()
    // The SDK passes on the failed read of the body: never a truncated image.
    await expect(
      openai.images.generate({ model: "fake/gpt-image", prompt: steered(`bytes=${BYTES} faults=cut`).prompt })
    ).rejects.toThrow()
  })

  it("ends the body broken when the upstream's answer breaks off, or is not JSON after the image; recorded as failed", async () => {
    for (const fault of ["cut", "badjson"]) {
      const { prompt } = steered(`bytes=${BYTES} faults=${fault}`)
      const { call, settled, dispose } = isolatedGateway()
      const response = await call("/v1/images/generations", jsonPost({ model: "replicate/flux-schnell", prompt }))
      expect(response.status).toBe(200)
      await expect(response.text()).rejects.toThrow()
      await settled()
      const events = ((await (await call("/v1/gateway/requests?limit=5")).json()) as { data: Array<Record<string, unknown>> })
        .data
      expect(events[0]).toMatchObject({ status: 502, images: 0, failedImages: 1 })
      await dispose()
    }
  })

  it("gives up on an upstream that stops sending within its timeout, and lets it go", async () => {
    const { id, prompt } = steered(`bytes=${BYTES} faults=stall`)
    const response = await generate({ model: "replicate/flux-schnell", prompt })
    expect(response.status).toBe(200)
    await expect(response.text()).rejects.toThrow()
    expect(await upstreamReaches(id, { aborted: 1 })).toMatchObject({ calls: 1, inFlight: 0 })
  })

  it("lets the upstream go when the client goes away mid-image, recorded as 499", async () => {
    const { call, settled, dispose } = isolatedGateway({ UPSTREAM_TIMEOUT_MS: "60000" })
    const { id, prompt } = steered(`bytes=${BYTES} faults=stall`)
    const response = await call("/v1/images/generations", jsonPost({ model: "replicate/flux-schnell", prompt }))
    expect(response.status).toBe(200)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    await reader.cancel()
    expect(await upstreamReaches(id, { aborted: 1 })).toMatchObject({ calls: 1, inFlight: 0 })
    await settled()
    const events = ((await (await call("/v1/gateway/requests?limit=5")).json()) as { data: Array<Record<string, unknown>> }).data
    expect(events[0]).toMatchObject({ status: 499, error: "client_closed_request", stream: false })
    await dispose()
  })
})

/** Several large images: each passed through in turn, at most MAX_CONCURRENT_UPSTREAM answers open at once. */
describe("several images passed through as they arrive", () => {
  const BYTES = 300_000

  it("writes every image byte for byte, holding at most MAX_CONCURRENT_UPSTREAM upstream answers open", async () => {
    const { id, prompt } = steered(`bytes=${BYTES} format=jpeg`)
    const openai = new OpenAI({ baseURL: "https://gateway.test/v1", apiKey: KEY, fetch: workerFetch })
    const images = await openai.images.generate({ model: "replicate/flux-schnell", prompt, n: 6 })
    expect(images.data).toHaveLength(6)
    const expected = await fakeImage("jpeg", BYTES)
    for (const image of images.data ?? []) expect(decodeBase64(image.b64_json ?? "")).toEqual(expected)
    const seen = await upstreamCalls(id)
    expect(seen.calls).toBe(6)
    expect(seen.peakInFlight).toBeLessThanOrEqual(4)
  })

  it("ends the body broken when an image breaks off while it is written, and records it failed", async () => {
    const { call, settled, dispose } = isolatedGateway({ MAX_CONCURRENT_UPSTREAM: "1" })
    const { prompt } = steered(`bytes=${BYTES} faults=ok,cut,ok`)
    const response = await call("/v1/images/generations", jsonPost({ model: "replicate/flux-schnell", prompt, n: 3 }))
    expect(response.status).toBe(200)
    await expect(response.text()).rejects.toThrow()
    await settled()
    const events = ((await (await call("/v1/gateway/requests?limit=5")).json()) as { data: Array<Record<string, unknown>> }).data
    // The first image was written; the one cut, and the one never reached, failed.
    expect(events[0]).toMatchObject({ status: 200, images: 1, failedImages: 2 })
    await dispose()
  })

  it("lets every upstream go when the client goes away mid-image, recorded as 499", async () => {
    const { call, settled, dispose } = isolatedGateway({ UPSTREAM_TIMEOUT_MS: "60000" })
    const { id, prompt } = steered(`bytes=${BYTES} faults=stall,stall,stall`)
    const response = await call("/v1/images/generations", jsonPost({ model: "replicate/flux-schnell", prompt, n: 3 }))
    expect(response.status).toBe(200)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    await upstreamReaches(id, { calls: 3 })
    await reader.cancel()
    expect(await upstreamReaches(id, { aborted: 3 })).toMatchObject({ calls: 3, inFlight: 0 })
    await settled()
    const events = ((await (await call("/v1/gateway/requests?limit=5")).json()) as { data: Array<Record<string, unknown>> }).data
    expect(events[0]).toMatchObject({ status: 499, error: "client_closed_request", stream: false })
    await dispose()
  })
})
