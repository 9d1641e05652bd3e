import { exports } from "cloudflare:workers"
import { createOpenAICompatible } from "@ai-sdk/openai-compatible"
import { streamText } from "ai"
import OpenAI from "openai"
import { describe, expect, it, onTestFinished } from "vitest"
import { call, errorOf, generate, isolatedGateway, KEY, steered, upstreamCalls, upstreamReaches } from "./helpers.ts"

/** Real clients inside workerd, their requests answered by the Worker under test. */
const workerFetch = (input: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(input, init))
const openai = new OpenAI({ baseURL: "https://gateway.test/v1", apiKey: KEY, fetch: workerFetch, maxRetries: 0 })

const chat = (body: unknown) =>
  call("/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })

const user = (content: unknown) => [{ role: "user", content }]

/** The text a client shows from a chat stream: its chunks' content deltas, in order (error chunks have none). */
const visibleText = (body: string) =>
  body
    .split("\n")
    .filter((line) => line.startsWith("data: {"))
    .map(
      (line) =>
        (JSON.parse(line.slice(6)) as { choices?: Array<{ delta: { content?: string } }> }).choices?.[0]?.delta.content ?? ""
    )
    .join("")

describe("POST /v1/chat/completions", () => {
  it("non-streaming: a chat.completion whose content is image markdown", async () => {
    const completion = await openai.chat.completions.create({
      model: "local/preview",
      messages: [
        { role: "system", content: "You draw." },
        { role: "user", content: "a lighthouse --size 64x64 --n 2" }
      ],
      temperature: 0.7,
      max_tokens: 100
    })
    expect(completion.object).toBe("chat.completion")
    expect(completion.choices[0]?.finish_reason).toBe("stop")
    const content = completion.choices[0]?.message.content ?? ""
    // hosted URLs, since the test Worker has the IMAGES bucket (the data-URL form is covered without it)
    expect(content).toMatch(/^!\[image 1\]\(https:\/\/gateway\.test\/images\/[0-9a-f]{32}\.png\)\n\n!\[image 2\]\(https:/)
    expect(completion.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 })
  })

  it("streaming through the openai client: role first, progress, the image, stop, usage", async () => {
    const { prompt } = steered("delay=300")
    const stream = await openai.chat.completions.create({
      model: "replicate/flux-schnell",
      messages: [{ role: "user", content: prompt }],
      stream: true,
      stream_options: { include_usage: true }
    })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(1)
    expect(new Set(chunks.map((chunk) => chunk.created)).size).toBe(1)
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant")
    const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")
    expect(text).toContain("Generating an image with replicate/flux-schnell...")
    expect(text).toMatch(/\n\n!\[image 1\]\(https:\/\/gateway\.test\/images\/[0-9a-f]{32}\.png\)/)
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe("stop")
    expect(chunks.at(-1)?.choices).toEqual([])
    expect(chunks.at(-1)?.usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 })
  })

  it("the Vercel AI SDK's streamText validates every chunk", async () => {
    const provider = createOpenAICompatible({
      name: "gateway",
      baseURL: "https://gateway.test/v1",
      apiKey: KEY,
      fetch: workerFetch
    })
    const result = streamText({ model: provider.chatModel("local/preview"), prompt: "a cat --size 32x32" })
    const kinds = new Set<string>()
    let text = ""
    for await (const part of result.fullStream) {
      kinds.add(part.type)
      if (part.type === "error") throw new Error(`AI SDK error part: ${String(part.error)}`)
      if (part.type === "text-delta") text += part.text
    }
    expect(kinds.has("finish")).toBe(true)
    expect(text).toMatch(/!\[image 1\]\(https:\/\/gateway\.test\/images\//)
  })

  it("a mid-stream upstream failure: visible text, an error chunk the SDKs raise, then [DONE]", async () => {
    const { prompt } = steered("faults=400")
    const response = await chat({ model: "replicate/flux-schnell", stream: true, messages: user(prompt) })
    expect(response.status).toBe(200)
    // Proxies in front (nginx and the like) must pass each event on as it comes, not cache or buffer the stream.
    expect(response.headers.get("content-type")).toContain("text/event-stream")
    expect(response.headers.get("cache-control")).toBe("no-cache")
    expect(response.headers.get("x-accel-buffering")).toBe("no")
    const body = await response.text()
    const data = body
      .split("\n")
      .filter((line) => line.startsWith("data: "))
      .map((line) => line.slice(6))
    expect(data.at(-1)).toBe("[DONE]")
    const error = JSON.parse(data.at(-2) ?? "{}") as { error?: { message: string; code: string } }
    expect(error.error?.code).toBe("upstream_rejected")
    expect(visibleText(body)).toContain("Image generation failed")

    const { prompt: again } = steered("faults=400")
    const stream = await openai.chat.completions.create({
      model: "replicate/flux-schnell",
      messages: user(again) as never,
      stream: true
    })
    await expect(
      (async () => {
        for await (const _ of stream) {
          // drain
        }
      })()
    ).rejects.toBeInstanceOf(OpenAI.APIError)
  })

  it("without the progress line, a failed stream's text starts with the failure, not a blank line", async () => {
    const quiet = isolatedGateway({ CHAT_PROGRESS: "off" })
    onTestFinished(quiet.dispose)
    const { prompt } = steered("faults=400")
    const response = await quiet.call("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "replicate/flux-schnell", stream: true, messages: user(prompt) })
    })
    expect(visibleText(await response.text())).toMatch(/^Image generation failed: The upstream rejected the request \(HTTP 400\)/)
  })

  it("a partly failed stream: the images that came, then a note of how many failed, and no error chunk", async () => {
    // Two calls for `--n 2`: the first answered, the second rejected (400 is not retried).
    const { prompt } = steered("faults=ok,400")
    const stream = await openai.chat.completions.create({
      model: "replicate/flux-schnell",
      messages: user(`${prompt} --n 2`) as never,
      stream: true
    })
    let content = ""
    for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? ""
    // The progress line, the one image that came (hosted in the bucket), then what failed and why.
    expect(content).toMatch(
      /^Generating 2 images with replicate\/flux-schnell\.\.\.\n\n!\[image 1\]\(https:\/\/gateway\.test\/images\/[0-9a-f]{32}\.png\)\n\n\(1 of 2 images failed: The upstream rejected the request \(HTTP 400\): [^)]+\)$/
    )
  })

  it("a partly failed answer, not streamed: the image that came, the stream's note of what failed and why, and x-images-failed", async () => {
    const { prompt } = steered("faults=ok,400")
    const response = await chat({ model: "replicate/flux-schnell", messages: user(`${prompt} --n 2`) })
    expect(response.status).toBe(200)
    expect(response.headers.get("x-images-failed")).toBe("1")
    const completion = (await response.json()) as OpenAI.Chat.ChatCompletion
    expect(completion.choices[0]?.message.content).toMatch(
      /^!\[image 1\]\(https:\/\/gateway\.test\/images\/[0-9a-f]{32}\.png\)\n\n\(1 of 2 images failed: The upstream rejected the request \(HTTP 400\): [^)]+\)$/
    )
    const whole = await chat({ model: "replicate/flux-schnell", messages: user(steered("").prompt) })
    expect(whole.headers.has("x-images-failed")).toBe(false)
  })

  it("refuses a prompt over 32000 characters, naming messages", async () => {
    const response = await chat({ model: "local/preview", messages: user("a".repeat(32_001)) })
    expect(response.status).toBe(400)
    expect(await errorOf(response)).toMatchObject({
      param: "messages",
      code: "invalid_value",
      message: "The prompt in 'messages' is longer than 32000 characters."
    })
  })

  // Before: only the first 160 characters were looked at, so a newline or a parenthesis deeper in an
  // upstream's base64 ended the SSE line or the markdown link, and the rest was the upstream's to write.
  it("an upstream image that is not plain base64 never reaches chat markdown or a stream's lines", async () => {
    const model = "replicate/flux-schnell"
    const plain = await chat({ model, messages: user(steered("faults=dirty").prompt) })
    expect(plain.status).toBe(502)
    expect(await plain.text()).not.toContain("evil")
    const streamed = await chat({ model, messages: user(steered("faults=dirty").prompt), stream: true })
    const chunks = await streamed.text()
    expect(chunks).not.toContain("evil")
    expect(chunks).not.toContain("data: injected")
    expect(chunks).toContain("not plain base64")
    const events = await (await generate({ model, prompt: steered("faults=dirty").prompt, stream: true })).text()
    expect(events).not.toContain("data: injected")
    expect(events).toContain("event: error")
  })

  it("a client that disconnects cancels the upstream calls", async () => {
    // The fake holds both answers until released, and this model's timeout is two minutes: only the cancel can end them.
    const { id, prompt } = steered("hold=1")
    const response = await chat({ model: "fake/patient", stream: true, messages: user(`${prompt} --n 2`) })
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    await reader.read() // the first chunk: the stream is running
    await upstreamReaches(id, { inFlight: 2 })
    await reader.cancel()
    const settled = await upstreamReaches(id, { aborted: 2 })
    expect(settled).toMatchObject({ calls: 2, inFlight: 0 })
  })

  it("fails before any byte with the normal HTTP error", async () => {
    const unknown = await chat({ model: "acme/none", stream: true, messages: user("a cat") })
    expect(unknown.status).toBe(404)
    expect((await errorOf(unknown)).code).toBe("model_not_found")
    for (const messages of [
      [{ role: "system", content: "only a system message" }],
      user([{ type: "image_url", image_url: { url: "https://x.test/a.png" } }]),
      user("--n 2")
    ]) {
      const response = await chat({ model: "local/preview", stream: true, messages })
      expect(response.status).toBe(400)
      expect((await errorOf(response)).param).toBe("messages")
    }
    const badFlag = await chat({ model: "local/preview", messages: user("a cat --n 20") })
    expect(badFlag.status).toBe(400)
    expect((await errorOf(badFlag)).message).toContain("--n 20")
  })

  it("content arrays and trailing flags reach the upstream as prompt, ratio and count", async () => {
    const { id, prompt } = steered("")
    const response = await chat({
      model: "replicate/flux-schnell",
      messages: user([
        // (An image part would make the reply an edit: see edits.test.ts.)
        { type: "text", text: prompt },
        { type: "text", text: "in watercolour --ar 16:9 --n 2" }
      ])
    })
    expect(response.status).toBe(200)
    const { calls, requests } = await upstreamCalls(id)
    expect(calls).toBe(2)
    expect(requests[0]).toMatchObject({ aspectRatio: "16:9", prompt: `${prompt}\nin watercolour` })
  })
})

describe("POST /v1/images/generations with stream: true", () => {
  it("yields one image_generation.completed event per image through the openai client", async () => {
    const { prompt } = steered("format=webp delay=300")
    const stream = await openai.images.generate({
      model: "replicate/flux-schnell",
      prompt,
      n: 2,
      stream: true,
      partial_images: 2
    })
    const events = []
    for await (const event of stream) events.push(event)
    expect(events).toHaveLength(2)
    for (const event of events) {
      expect(event.type).toBe("image_generation.completed")
      if (event.type === "image_generation.completed") {
        expect(event.output_format).toBe("webp")
        expect(event.b64_json.length).toBeGreaterThan(10)
        expect(event.usage.total_tokens).toBe(0)
      }
    }
  })

  it("reports an all-failed generation as an error event", async () => {
    const { prompt } = steered("faults=400")
    const response = await call("/v1/images/generations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt, stream: true })
    })
    expect(response.status).toBe(200)
    expect(await response.text()).toMatch(/^event: error\ndata: \{"type":"error","error":\{/m)
  })
})
