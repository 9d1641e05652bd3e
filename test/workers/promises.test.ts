import { env } from "cloudflare:workers"
import { afterAll, describe, expect, it } from "vitest"
import type { UsageEvent, UsageSummary } from "../../src/domain/Usage.ts"
import { decodeBase64, isolatedGateway, jsonPost, releaseUpstream, steered, upstreamCalls, upstreamReaches } from "./helpers.ts"

/**
 * What the README promises about settings and failure paths, each on a gateway of its own inside workerd,
 * with the real R2 bucket and statistics Durable Object (`isolatedGateway`).
 */
const bucket = (env as unknown as { IMAGES: R2Bucket }).IMAGES
const gateways: Array<ReturnType<typeof isolatedGateway>> = []
const gateway = (...args: Parameters<typeof isolatedGateway>) => {
  const made = isolatedGateway(...args)
  gateways.push(made)
  return made
}
afterAll(async () => {
  for (const made of gateways) await made.dispose()
})

/** The real bucket with its writes replaced. */
const bucketWithPut = (
  put: (key: string, value: ReadableStream | ArrayBuffer | string, options?: R2PutOptions) => Promise<unknown>
) =>
  ({
    head: (key: string) => bucket.head(key),
    get: (key: string, options?: R2GetOptions) => bucket.get(key, options),
    list: (options?: R2ListOptions) => bucket.list(options),
    delete: (keys: string | Array<string>) => bucket.delete(keys),
    put
  }) as unknown as R2Bucket

interface ImagesJson {
  readonly data: ReadonlyArray<{ readonly b64_json?: string; readonly url?: string }>
}

/** Reads a stream until `done` holds for the text so far; the reader stays open for the rest. */
const readUntil = async (reader: ReadableStreamDefaultReader<Uint8Array>, done: (text: string) => boolean) => {
  const decoder = new TextDecoder()
  let text = ""
  while (!done(text)) {
    const chunk = await reader.read()
    if (chunk.done) throw new Error(`the stream ended before the expected text:\n${text}`)
    text += decoder.decode(chunk.value, { stream: true })
  }
  return text
}
const readRest = async (reader: ReadableStreamDefaultReader<Uint8Array>) =>
  readUntil(reader, () => false).catch((error: Error) => error.message)

const keepAlives = (text: string) => text.match(/^: keep-alive$/gm)?.length ?? 0

describe("hosting settings", () => {
  it("PUBLIC_BASE_URL puts hosted images on that origin, and they are served there", async () => {
    const { call } = gateway({ PUBLIC_BASE_URL: "https://images.example.com" })
    const response = await call(
      "/v1/images/generations",
      jsonPost({ model: "local/preview", prompt: "a kite", size: "32x32", response_format: "url" })
    )
    const url = new URL(((await response.json()) as ImagesJson).data[0]?.url ?? "")
    expect(url.origin).toBe("https://images.example.com")
    expect(url.pathname).toMatch(/^\/images\/[0-9a-f]{32}\.png$/)
    expect((await call(url.pathname, { key: null })).status).toBe(200)
  })

  it("PUBLIC_BASE_URL may carry a path, with or without trailing slashes, and hosted URLs go under it", async () => {
    for (const base of ["https://example.com/gallery", "https://example.com/gallery//"]) {
      const { call } = gateway({ PUBLIC_BASE_URL: base })
      const response = await call(
        "/v1/images/generations",
        jsonPost({ model: "local/preview", prompt: "a kite", size: "32x32", response_format: "url" })
      )
      const url = ((await response.json()) as ImagesJson).data[0]?.url ?? ""
      expect(url).toMatch(/^https:\/\/example\.com\/gallery\/images\/[0-9a-f]{32}\.png$/)
    }
  })

  it("IMAGE_TTL_HOURS sets how long an image lives, in R2 and in its Cache-Control", async () => {
    const { call } = gateway({ IMAGE_TTL_HOURS: "2" })
    const before = Date.now()
    const response = await call(
      "/v1/images/generations",
      jsonPost({ model: "local/preview", prompt: "a kite", size: "32x32", response_format: "url" })
    )
    const url = new URL(((await response.json()) as ImagesJson).data[0]?.url ?? "")
    const object = await bucket.head(`images/${url.pathname.slice(8, 40)}`)
    const expiresAt = Number(object?.customMetadata?.expiresAt)
    expect(expiresAt).toBeGreaterThanOrEqual(before + 2 * 3_600_000)
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 2 * 3_600_000)
    const maxAge = Number(/max-age=(\d+)/.exec((await call(url.pathname, { key: null })).headers.get("cache-control") ?? "")?.[1])
    expect(maxAge).toBeGreaterThan(2 * 3600 - 60)
    expect(maxAge).toBeLessThanOrEqual(2 * 3600)
  })

  it("only a url answer writes to the bucket: b64_json generations and edits store nothing", async () => {
    const written: Array<string> = []
    const counting = bucketWithPut((key, value, options) => {
      written.push(key)
      return bucket.put(key, value, options)
    })
    const { call } = gateway({}, { images: counting })
    const png = await call(
      "/v1/images/generations",
      jsonPost({ model: "local/preview", prompt: "a kite", size: "32x32", response_format: "b64_json" })
    )
    const b64 = ((await png.json()) as ImagesJson).data[0]?.b64_json ?? ""
    const edit = (format: string) => {
      const form = new FormData()
      form.append("model", "local/preview")
      form.append("prompt", "in blue")
      form.append("response_format", format)
      form.append("image", new File([decodeBase64(b64)], "kite.png", { type: "image/png" }))
      return call("/v1/images/edits", { method: "POST", body: form })
    }
    expect(((await (await edit("b64_json")).json()) as ImagesJson).data[0]?.b64_json).toBeDefined()
    expect(written).toEqual([])
    expect(((await (await edit("url")).json()) as ImagesJson).data[0]?.url).toMatch(/^https:\/\/gateway\.test\/images\//)
    expect(written).toHaveLength(1)
  })

  it("a failed R2 write falls back to a data: URL, in images and in chat", async () => {
    const failing = bucketWithPut(() => Promise.reject(new Error("R2 is down")))
    const { call } = gateway({}, { images: failing })
    const images = await call(
      "/v1/images/generations",
      jsonPost({ model: "local/preview", prompt: "a kite", size: "32x32", response_format: "url" })
    )
    expect(images.status).toBe(200)
    expect(((await images.json()) as ImagesJson).data[0]?.url).toMatch(/^data:image\/png;base64,iVBORw0KGgo/)
    const chat = await call(
      "/v1/chat/completions",
      jsonPost({ model: "local/preview", messages: [{ role: "user", content: "a kite --size 32x32" }] })
    )
    const content = ((await chat.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content
    expect(content).toMatch(/^!\[image 1\]\(data:image\/png;base64,iVBORw0KGgo[A-Za-z0-9+/=]*\)$/)
  })
})

describe("CORS_ORIGINS", () => {
  it("a list allows exactly its origins, in preflights and answers, and varies on Origin", async () => {
    const { call } = gateway({ CORS_ORIGINS: "https://chat.example.com, https://ui.example.org" })
    const preflight = (origin: string) =>
      call("/v1/images/generations", {
        method: "OPTIONS",
        key: null,
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, content-type"
        }
      })
    for (const origin of ["https://chat.example.com", "https://ui.example.org"]) {
      const allowed = await preflight(origin)
      expect(allowed.headers.get("access-control-allow-origin")).toBe(origin)
      expect(allowed.headers.get("access-control-allow-headers")).toContain("authorization")
      expect(allowed.headers.get("vary")).toContain("origin")
      // Browsers keep the preflight's answer a day instead of asking before every request.
      expect(allowed.headers.get("access-control-max-age")).toBe("86400")
    }
    const plain = await call("/v1/models", {
      method: "OPTIONS",
      key: null,
      headers: { origin: "https://chat.example.com", "access-control-request-method": "GET" }
    })
    // A preflight that names no headers still learns the two every client sends.
    expect(plain.headers.get("access-control-allow-headers")).toBe("authorization, content-type")
    const other = await preflight("https://evil.example.net")
    expect(other.headers.get("access-control-allow-origin")).toBeNull()
    // Refusals vary on Origin too: a shared cache must not hand an allowed origin the answer without its header.
    expect(other.headers.get("vary")).toContain("origin")
    const answer = await call("/v1/models", { headers: { origin: "https://ui.example.org" } })
    expect(answer.headers.get("access-control-allow-origin")).toBe("https://ui.example.org")
    expect(answer.headers.get("access-control-expose-headers")).toContain("x-request-id")
    expect(answer.headers.get("vary")).toContain("origin")
    const refused = await call("/v1/models", { headers: { origin: "https://evil.example.net" } })
    expect(refused.headers.get("access-control-allow-origin")).toBeNull()
    expect(refused.headers.get("vary")).toContain("origin")
  })
})

describe("generation cache expiry", () => {
  const cacheEntries = async () => new Set((await bucket.list({ prefix: "cache/" })).objects.map((object) => object.key))

  it("an expired entry is a miss, and the cron deletes it", async () => {
    const { call, scheduled } = gateway({ CACHE_TTL_SECONDS: "3600" })
    const { id, prompt } = steered("vary=1")
    const request = () => call("/v1/images/generations", jsonPost({ model: "replicate/flux-schnell", prompt }))
    const existing = await cacheEntries()
    const miss = await request()
    expect(miss.headers.get("x-cache")).toBe("MISS")
    const first = ((await miss.json()) as ImagesJson).data[0]?.b64_json
    const hit = await request()
    expect(hit.headers.get("x-cache")).toBe("HIT")
    expect(((await hit.json()) as ImagesJson).data[0]?.b64_json).toBe(first)
    expect((await upstreamCalls(id)).calls).toBe(1)

    const [key] = [...(await cacheEntries())].filter((entry) => !existing.has(entry))
    const entry = await bucket.get(key ?? "")
    await bucket.put(key ?? "", (await entry?.text()) ?? "", { customMetadata: { expiresAt: String(Date.now() - 1) } })
    const expired = await request()
    expect(expired.headers.get("x-cache")).toBe("MISS")
    // The fake draws each call's image anew (vary=1): a fresh answer, not the cached one.
    expect(((await expired.json()) as ImagesJson).data[0]?.b64_json).not.toBe(first)
    expect((await upstreamCalls(id)).calls).toBe(2)

    // The miss wrote a fresh entry under the same key; expire it again for the cron.
    await bucket.put(key ?? "", "[]", { customMetadata: { expiresAt: String(Date.now() - 1) } })
    await scheduled()
    expect(await bucket.head(key ?? "")).toBeNull()
  })
})

describe("statistics, each test on a store of its own", () => {
  const stats = async (call: ReturnType<typeof isolatedGateway>["call"]) =>
    (await (await call("/v1/gateway/stats?window=1h")).json()) as UsageSummary
  const events = async (call: ReturnType<typeof isolatedGateway>["call"]) =>
    ((await (await call("/v1/gateway/requests?limit=50")).json()) as { data: Array<UsageEvent> }).data

  it("counts exactly the requests made: requests, images, success rate, per model", async () => {
    const { call, settled } = gateway()
    await (
      await call("/v1/images/generations", jsonPost({ model: "local/preview", prompt: "a tower", size: "32x32", n: 2 }))
    ).arrayBuffer()
    await (await call("/v1/images/generations", jsonPost({ model: "acme/none", prompt: "a tower" }))).arrayBuffer()
    await settled()
    const summary = await stats(call)
    expect(summary).toMatchObject({ window: "1h", source: "events", requests: 2, images: 2, successRate: 0.5 })
    expect(summary.latencyMs.p50).not.toBeNull()
    expect(summary.models.find((model) => model.model === "local/preview")).toMatchObject({
      requests: 1,
      succeeded: 1,
      images: 2
    })
    expect(summary.series.reduce((sum, point) => sum + point.requests, 0)).toBe(2)
    for (const window of ["24h", "7d", "30d"]) {
      expect(((await (await call(`/v1/gateway/stats?window=${window}`)).json()) as UsageSummary).requests).toBe(2)
    }
  })

  it("the cron prunes statistics past their retention", async () => {
    const { call, settled, scheduled, store } = gateway()
    await (
      await call("/v1/images/generations", jsonPost({ model: "local/preview", prompt: "a tower", size: "32x32" }))
    ).arrayBuffer()
    await settled()
    const [recorded] = await events(call)
    expect(recorded).toBeDefined()
    // The same event eight days back, written straight to this gateway's store: past the seven days kept.
    await store()?.record([{ ...(recorded as UsageEvent), requestId: "req_old", ts: Date.now() - 8 * 86_400_000 }])
    expect((await events(call)).map((event) => event.requestId)).toContain("req_old")
    await scheduled()
    const kept = (await events(call)).map((event) => event.requestId)
    expect(kept).not.toContain("req_old")
    expect(kept).toContain(recorded?.requestId)
  })

  it("records a chat stream the client cut off as 499 client_closed_request", async () => {
    const { call, settled } = gateway()
    const { id, prompt } = steered("hold=1")
    const response = await call(
      "/v1/chat/completions",
      jsonPost({ model: "fake/patient", stream: true, messages: [{ role: "user", content: prompt }] })
    )
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    await reader.read()
    await upstreamReaches(id, { inFlight: 1 })
    await reader.cancel()
    await upstreamReaches(id, { aborted: 1 })
    await settled()
    expect((await events(call))[0]).toMatchObject({
      endpoint: "chat",
      stream: true,
      status: 499,
      error: "client_closed_request",
      images: 0
    })
  })
})

describe("streams while the upstream works", () => {
  it("an images stream sends keep-alive comments until the image, then the image", async () => {
    const { call } = gateway()
    const { id, prompt } = steered("hold=1")
    const response = await call("/v1/images/generations", jsonPost({ model: "fake/patient", prompt, stream: true }))
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const waiting = await readUntil(reader, (text) => keepAlives(text) >= 2)
    expect(waiting).not.toContain("image_generation.completed")
    await releaseUpstream(id)
    const rest = await readRest(reader)
    expect(rest).toContain("event: image_generation.completed")
  })

  it("a chat stream sends keep-alive comments until the image, as bare comment lines", async () => {
    const { call } = gateway()
    const { id, prompt } = steered("hold=1")
    const response = await call(
      "/v1/chat/completions",
      jsonPost({ model: "fake/patient", stream: true, messages: [{ role: "user", content: prompt }] })
    )
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const waiting = await readUntil(reader, (text) => keepAlives(text) >= 2)
    await releaseUpstream(id)
    const body = waiting + (await readRest(reader))
    expect(body).not.toMatch(/^event:/m)
    expect(body).toContain("![image 1](")
    expect(body.trimEnd().endsWith("data: [DONE]")).toBe(true)
  })
})

describe("retries", () => {
  it("waits the Retry-After an upstream asks for, up to UPSTREAM_BACKOFF_MAX_MS", async () => {
    const { call } = gateway({ UPSTREAM_BACKOFF_MAX_MS: "5000" })
    const { id, prompt } = steered("faults=429:1")
    expect((await call("/v1/images/generations", jsonPost({ model: "replicate/flux-schnell", prompt }))).status).toBe(200)
    const { arrivals } = await upstreamCalls(id)
    expect(arrivals).toHaveLength(2)
    // A backoff of 20 ms, stretched to the second the upstream asked for: measured on the fake's own clock.
    expect((arrivals[1] ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThanOrEqual(990)

    // With the cap below it (the Worker's 200 ms), a Retry-After of 7 s is cut to the cap.
    const capped = steered("faults=429:7")
    expect(
      (await gateway().call("/v1/images/generations", jsonPost({ model: "replicate/flux-schnell", prompt: capped.prompt })))
        .status
    ).toBe(200)
    const waits = (await upstreamCalls(capped.id)).arrivals
    expect((waits[1] ?? 0) - (waits[0] ?? 0)).toBeLessThan(7000)
  })
})

describe("request bodies", () => {
  it("413 for a body over the limit sent without Content-Length (chunked)", async () => {
    const { call } = gateway()
    const piece = new TextEncoder().encode("x".repeat(64 * 1024))
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull: (controller) => {
        if (sent === 0) controller.enqueue(new TextEncoder().encode('{"prompt":"'))
        if (sent > 2 * 1024 * 1024) return controller.close()
        sent += piece.length
        controller.enqueue(piece)
      }
    })
    // A stream of unknown length: the request the handler gets has no Content-Length, only the bytes.
    expect(
      new Request("https://gateway.test/", { method: "POST", body, duplex: "half" } as RequestInit).headers.has("content-length")
    ).toBe(false)
    const response = await call("/v1/images/generations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half"
    } as RequestInit)
    expect(response.status).toBe(413)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("request_too_large")
  })
})
