import { createOpenAICompatible } from "@ai-sdk/openai-compatible"
import { generateImage, generateText, streamText } from "ai"
import { decode as decodePng, encode as encodePng } from "fast-png"
import OpenAI from "openai"
import { describe, expect, inject, it } from "vitest"
import { DEVELOPMENT_API_KEY } from "../../src/services/GatewayConfig.ts"

/** The official `openai` client against `npm start`, as any OpenAI user would point it at the gateway. */
const client = (options: { apiKey?: string; maxRetries?: number } = {}) =>
  new OpenAI({
    baseURL: `${inject("gatewayUrl")}/v1`,
    apiKey: options.apiKey ?? DEVELOPMENT_API_KEY,
    maxRetries: options.maxRetries ?? 2
  })

const steered = (directives: string) => {
  const id = crypto.randomUUID()
  return { id, prompt: `an orange cat on a windowsill [[id=${id} ${directives}]]` }
}

const upstreamCalls = async (id: string) =>
  ((await (await fetch(`${inject("fakeUpstreamUrl")}/__calls?id=${id}`)).json()) as { calls: number }).calls

describe("official openai client against npm start", () => {
  it("images.generate with n: 3 returns 3 images from 3 upstream calls", async () => {
    const { id, prompt } = steered("")
    const { data: images, request_id } = await client()
      .images.generate({ model: "replicate/flux-schnell", prompt, n: 3, size: "1024x1024" })
      .withResponse()
    expect(images.data).toHaveLength(3)
    for (const image of images.data ?? []) expect(image.b64_json?.length).toBeGreaterThan(10)
    expect(images.output_format).toBe("png")
    expect(request_id).toMatch(/^req_/)
    expect(await upstreamCalls(id)).toBe(3)
  })

  it("an OpenAI-compatible upstream (UPSTREAMS) serves n images in one call, and falls back when it fails", async () => {
    const { id, prompt } = steered("bytes=2048")
    const images = await client().images.generate({ model: "my-openai/gpt-image-1", prompt, n: 2, size: "1024x1024" })
    expect(images.data).toHaveLength(2)
    expect(
      Buffer.from(images.data?.[0]?.b64_json ?? "", "base64")
        .subarray(1, 4)
        .toString()
    ).toBe("PNG")
    expect(await upstreamCalls(id)).toBe(1)

    // The upstream keeps failing: after its retries, the fallback (the offline model) answers; the client sees only success.
    const failing = steered("faults=503,503,503,503")
    const served = await client({ maxRetries: 0 }).images.generate({
      model: "my-openai/gpt-image-1",
      prompt: failing.prompt,
      size: "256x256"
    })
    expect(
      Buffer.from(served.data?.[0]?.b64_json ?? "", "base64")
        .subarray(1, 4)
        .toString()
    ).toBe("PNG")
    expect(await upstreamCalls(failing.id)).toBe(3)

    // A prompt the upstream refuses is the client's 400, raised by the SDK as such.
    const refused = steered("faults=400")
    const error = await client({ maxRetries: 0 })
      .images.generate({ model: "my-openai/gpt-image-1", prompt: refused.prompt })
      .catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(OpenAI.BadRequestError)
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("upstream_rejected")
  })

  it("under npm start, a request without a model is served by the offline model: a first call needs no network", async () => {
    const images = await client().images.generate({ prompt: "a first image", size: "256x256" })
    expect(
      Buffer.from(images.data?.[0]?.b64_json ?? "", "base64")
        .subarray(1, 4)
        .toString()
    ).toBe("PNG")
    const [local] =
      (await client().images.generate({ model: "local/preview", prompt: "a first image", size: "256x256" })).data ?? []
    expect(images.data?.[0]?.b64_json).toBe(local?.b64_json)
  })

  it("works offline with local/preview and returns a PNG, also as a URL hosted on the local R2 bucket", async () => {
    const b64 = await client().images.generate({ model: "local/preview", prompt: "a castle", size: "256x256" })
    const png = Buffer.from(b64.data?.[0]?.b64_json ?? "", "base64")
    expect(png.subarray(1, 4).toString()).toBe("PNG")
    const url = await client().images.generate({
      model: "local/preview",
      prompt: "a castle",
      size: "256x256",
      response_format: "url"
    })
    expect(url.data?.[0]?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/images\/[0-9a-f]{32}\.png$/)
    const hosted = await fetch(url.data?.[0]?.url ?? "")
    expect(hosted.headers.get("content-type")).toBe("image/png")
    expect(Buffer.from(await hosted.arrayBuffer())).toEqual(png)
  })

  it("dall-e-3 style requests work through the alias", async () => {
    const { prompt } = steered("")
    const images = await client().images.generate({
      model: "dall-e-3",
      prompt,
      quality: "hd",
      style: "natural",
      size: "1792x1024"
    })
    expect(images.data).toHaveLength(1)
  })

  it("models.list and models.retrieve", async () => {
    const models = []
    for await (const model of client().models.list()) models.push(model)
    expect(models.map((model) => model.id)).toEqual(expect.arrayContaining(["replicate/flux-1.1-pro-ultra", "local/preview"]))
    const model = await client().models.retrieve("replicate/flux-schnell")
    expect(model).toMatchObject({ id: "replicate/flux-schnell", object: "model", owned_by: "replicate" })
  })

  it("surfaces each failure as the SDK's typed error", async () => {
    await expect(client({ apiKey: "sk-wrong" }).models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError)
    const bad = client().images.generate({ prompt: "x", n: 11 })
    await expect(bad).rejects.toBeInstanceOf(OpenAI.BadRequestError)
    await expect(bad).rejects.toMatchObject({ param: "n", type: "invalid_request_error" })
    await expect(client().images.generate({ prompt: "x", model: "acme/none" })).rejects.toBeInstanceOf(OpenAI.NotFoundError)
    await expect(client().models.retrieve("acme/none")).rejects.toMatchObject({ status: 404, code: "model_not_found" })
  })

  it("upstream failures are not multiplied by the SDK's own retries", async () => {
    const { id, prompt } = steered("faults=503,503,503,503,503,503,503,503,503")
    await expect(client().images.generate({ model: "replicate/flux-schnell", prompt })).rejects.toBeInstanceOf(
      OpenAI.InternalServerError
    )
    // the gateway's 3 attempts, and no SDK retry on top (x-should-retry: false)
    expect(await upstreamCalls(id)).toBe(3)
  })

  it("an exhausted upstream rate limit is the SDK's RateLimitError", async () => {
    const { prompt } = steered("faults=429:1,429:1,429:1")
    await expect(client({ maxRetries: 0 }).images.generate({ model: "replicate/flux-schnell", prompt })).rejects.toBeInstanceOf(
      OpenAI.RateLimitError
    )
  })
})

describe("the Vercel AI SDK against npm start", () => {
  // An answer of several images is written as they finish (in workerd, the pool's RPC could not carry this test).
  it("generateImage reads an answer of several images written as they finish", async () => {
    const provider = createOpenAICompatible({
      name: "gateway",
      baseURL: `${inject("gatewayUrl")}/v1`,
      apiKey: DEVELOPMENT_API_KEY
    })
    const { images } = await generateImage({
      model: provider.imageModel("replicate/flux-schnell"),
      prompt: steered("bytes=2048").prompt,
      n: 2
    })
    expect(images).toHaveLength(2)
    expect(Array.from(images[0]?.uint8Array.subarray(0, 4) ?? [])).toEqual([0x89, 0x50, 0x4e, 0x47])
  })
})

describe("chat with a pasted image against npm start", () => {
  // In workerd, the pool's RPC cannot carry the AI SDK's request of an image (1009, message too large).
  it("the Vercel AI SDK's image part makes the reply an edit of it, streamed and not", async () => {
    const provider = createOpenAICompatible({
      name: "gateway",
      baseURL: `${inject("gatewayUrl")}/v1`,
      apiKey: DEVELOPMENT_API_KEY
    })
    const image = encodePng({ width: 12, height: 10, channels: 3, data: new Uint8Array(12 * 10 * 3).fill(200) })
    const messages = [
      {
        role: "user" as const,
        content: [
          { type: "text" as const, text: "make it blue" },
          { type: "image" as const, image, mediaType: "image/png" }
        ]
      }
    ]
    /** The size of the image a reply links to: an edit keeps the pasted image's (a generation would be 512 x 512). */
    const linkedSize = async (text: string) => {
      const url = /\((http[^)]+\/images\/[^)]+)\)/.exec(text)?.[1] ?? /\((data:image\/png;base64,[^)]+)\)/.exec(text)?.[1]
      expect(url).toBeDefined()
      const png = decodePng(new Uint8Array(await (await fetch(url ?? "")).arrayBuffer()))
      return [png.width, png.height]
    }
    const plain = await generateText({ model: provider.chatModel("local/preview"), messages })
    expect(await linkedSize(plain.text)).toEqual([12, 10])
    let text = ""
    for await (const part of streamText({ model: provider.chatModel("local/preview"), messages }).fullStream) {
      if (part.type === "error") throw new Error(`AI SDK error part: ${String(part.error)}`)
      if (part.type === "text-delta") text += part.text
    }
    expect(await linkedSize(text)).toEqual([12, 10])
  })
})

describe("streaming chat against npm start", () => {
  it("shows progress while the upstream is still working, and the image when it is ready", async () => {
    // The fake holds the upstream answer until this test releases it, which it does only on seeing progress:
    // progress that came late, or not at all, leaves the image out (the held call times out).
    const { id, prompt } = steered("hold=1")
    const stream = await client().chat.completions.create({
      model: "replicate/flux-schnell",
      messages: [{ role: "user", content: prompt }],
      stream: true
    })
    let text = ""
    let released = false
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta.content ?? ""
      if (content.startsWith("Generating") && !released) {
        released = true
        // The upstream call is under way, unanswered, while the client already shows progress.
        await fetch(`${inject("fakeUpstreamUrl")}/__wait?id=${id}&inFlight=1`)
        expect(await upstreamCalls(id)).toBe(1)
        await fetch(`${inject("fakeUpstreamUrl")}/__release?id=${id}`, { method: "POST" })
      }
      text += content
    }
    expect(released).toBe(true)
    expect(text).toMatch(/!\[image 1\]\(http:\/\/127\.0\.0\.1:\d+\/images\/[0-9a-f]{32}\.png\)/)
  })
})
