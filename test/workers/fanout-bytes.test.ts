import { describe, expect, it } from "vitest"
import { call, decodeBase64, fakeImage, generate, releaseUpstream, steered, upstreamCalls, upstreamReaches } from "./helpers.ts"

/** MAX_CONCURRENT_UPSTREAM in the test Worker (the default). */
const MAX_CONCURRENT = 4

describe("fan-out, observed at the upstream", () => {
  // Call counts alone pass with a sequential fan-out; the fake records how many calls were in flight at once.
  it.each([
    [3, 3],
    [7, MAX_CONCURRENT]
  ])("n: %i runs min(n, MAX_CONCURRENT_UPSTREAM) = %i calls at once", async (n, peak) => {
    // The fake holds every answer until the expected number of calls is in flight at once (a sequential
    // fan-out never gets there, and the test times out); past the release, answers come at once.
    const { id, prompt } = steered("hold=1")
    const answered = generate({ model: "fake/patient", prompt, n })
    await upstreamReaches(id, { inFlight: peak })
    await releaseUpstream(id)
    const response = await answered
    expect(response.status).toBe(200)
    expect(((await response.json()) as { data: Array<unknown> }).data).toHaveLength(n)
    const calls = await upstreamCalls(id)
    expect([calls.calls, calls.peakInFlight]).toEqual([n, peak])
  })
})

const MiB = 1024 * 1024
const dataLines = (text: string) =>
  text
    .split("\n")
    .filter((line) => line.startsWith("data: ") && line !== "data: [DONE]")
    .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>)
/** The images of a chat reply's markdown, fetched from their hosted URLs (the test Worker has the bucket). */
const markdownImages = async (content: string) =>
  Promise.all(
    [...content.matchAll(/!\[image \d+\]\((https:\/\/gateway\.test(\/images\/[^)]+))\)/g)].map(
      async (match) => new Uint8Array(await (await call(match[2] ?? "", { key: null })).arrayBuffer())
    )
  )
const chat = (prompt: string, stream: boolean) =>
  call("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "replicate/flux-schnell", messages: [{ role: "user", content: prompt }], stream })
  })

describe("byte-exact images of realistic size, on every path to the client", () => {
  it.each([
    ["png", MiB],
    ["jpeg", 3 * MiB],
    ["webp", MiB]
  ])("%s of %i bytes: b64_json, a hosted url read back from R2, and the images stream", async (format, size) => {
    const expected = await fakeImage(format, size)
    const { prompt } = steered(`format=${format} bytes=${size}`)
    const b64 = (await (await generate({ model: "replicate/flux-schnell", prompt })).json()) as {
      data: Array<{ b64_json: string }>
    }
    expect(decodeBase64(b64.data[0]?.b64_json ?? "")).toEqual(expected)

    const hosted = (await (await generate({ model: "replicate/flux-schnell", prompt, response_format: "url" })).json()) as {
      data: Array<{ url: string }>
    }
    const url = new URL(hosted.data[0]?.url ?? "")
    expect(new Uint8Array(await (await call(url.pathname, { key: null })).arrayBuffer())).toEqual(expected)

    const events = dataLines(await (await generate({ model: "replicate/flux-schnell", prompt, stream: true })).text())
    const completed = events.find((event) => event.type === "image_generation.completed")
    expect(decodeBase64(String(completed?.b64_json))).toEqual(expected)
  })

  it("a 1 MiB PNG in a chat reply, streamed and not, as markdown whose image is the upstream's bytes", async () => {
    const expected = await fakeImage("png", MiB)
    const prompt = `${steered(`bytes=${MiB}`).prompt} --n 2`
    const reply = (await (await chat(prompt, false)).json()) as { choices: Array<{ message: { content: string } }> }
    const fromReply = await markdownImages(reply.choices[0]?.message.content ?? "")
    expect(fromReply).toHaveLength(2)
    for (const image of fromReply) expect(image).toEqual(expected)

    const chunks = dataLines(await (await chat(prompt, true)).text()) as Array<{
      choices?: Array<{ delta?: { content?: string } }>
    }>
    const content = chunks.map((chunk) => chunk.choices?.[0]?.delta?.content ?? "").join("")
    const fromStream = await markdownImages(content)
    expect(fromStream).toHaveLength(2)
    for (const image of fromStream) expect(image).toEqual(expected)
  })
})
