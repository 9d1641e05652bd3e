import { exports } from "cloudflare:workers"
import { decode as decodePng, encode as encodePng } from "fast-png"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { call, decodeBase64, errorOf, eventOf, jsonPost, KEY, steered, upstreamCalls } from "./helpers.ts"

/**
 * `POST /v1/images/edits`: the `openai` SDK's `images.edit` against the offline model (a real edit made in the
 * Worker) and against the fake OpenAI-compatible upstream (what it received is checked byte for byte), and
 * every bad upload refused with a 4xx naming its field, before any upstream call.
 */

const workerFetch = (input: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(input, init))
const openai = new OpenAI({ baseURL: "https://gateway.test/v1", apiKey: KEY, fetch: workerFetch, maxRetries: 0 })

/** A PNG of one colour, RGB or RGBA. */
const flatPng = (width: number, height: number, rgba: readonly [number, number, number, number]) =>
  encodePng({ width, height, channels: 4, data: Uint8Array.from({ length: width * height * 4 }, (_, i) => rgba[i % 4]!) })

/** A mask whose left half is transparent (edit there) and right half opaque (keep). */
const halfMask = (width: number, height: number) =>
  encodePng({
    width,
    height,
    channels: 4,
    data: Uint8Array.from({ length: width * height * 4 }, (_, i) => (i % 4 === 3 ? ((i >> 2) % width < width / 2 ? 0 : 255) : 0))
  })

const file = (bytes: Uint8Array, name: string, type = "image/png") => new File([bytes as Uint8Array<ArrayBuffer>], name, { type })

const RED = [200, 30, 30, 255] as const

const dataUrl = (bytes: Uint8Array) => `data:image/png;base64,${btoa(String.fromCharCode(...bytes))}`

const editForm = (fields: Record<string, string>, files: ReadonlyArray<readonly [string, File]>) => {
  const form = new FormData()
  for (const [name, value] of Object.entries(fields)) form.append(name, value)
  for (const [name, value] of files) form.append(name, value)
  return form
}
const postEdit = (body: FormData | string, contentType?: string) =>
  call("/v1/images/edits", {
    method: "POST",
    body,
    ...(contentType === undefined ? {} : { headers: { "content-type": contentType } })
  })

describe("image edits", () => {
  it("edits a PNG offline with local/preview through the openai SDK: the requested size, recoloured, the same bytes each time", async () => {
    const input = flatPng(64, 48, RED)
    const edit = () =>
      openai.images.edit({ model: "local/preview", prompt: "make it blue", image: file(input, "photo.png"), size: "256x256" })
    const first = await edit()
    const png = decodePng(decodeBase64(first.data?.[0]?.b64_json ?? ""))
    expect([png.width, png.height]).toEqual([256, 256])
    expect(Array.from(png.data.subarray(0, 3))).not.toEqual([200, 30, 30])
    expect((await edit()).data?.[0]?.b64_json).toBe(first.data?.[0]?.b64_json)
  })

  it("keeps the pixels the mask covers, and edits where it is transparent", async () => {
    const result = await openai.images.edit({
      model: "local/preview",
      prompt: "a sunset",
      image: file(flatPng(32, 32, RED), "photo.png"),
      mask: file(halfMask(32, 32), "mask.png"),
      size: "64x64"
    })
    const png = decodePng(decodeBase64(result.data?.[0]?.b64_json ?? ""))
    const at = (x: number, y: number) =>
      Array.from(png.data.subarray((y * 64 + x) * png.channels, (y * 64 + x) * png.channels + 3))
    expect(at(60, 10)).toEqual([200, 30, 30])
    expect(at(4, 10)).not.toEqual([200, 30, 30])
  })

  it("forwards one file, several files and a mask to an OpenAI-compatible upstream, as multipart, byte for byte", async () => {
    const one = flatPng(8, 8, RED)
    const two = flatPng(8, 8, [0, 90, 200, 255])
    const mask = halfMask(8, 8)
    const single = steered("format=png")
    const a = await openai.images.edit({ model: "fake/gpt-image", prompt: single.prompt, image: file(one, "a.png") })
    expect(a.data).toHaveLength(1)
    const several = steered("format=png")
    await openai.images.edit({
      model: "fake/gpt-image",
      prompt: several.prompt,
      image: [file(one, "a.png"), file(two, "b.png")],
      mask: file(mask, "m.png"),
      n: 2
    })
    const received = (id: string) => upstreamCalls(id).then((calls) => calls.requests[0] as Record<string, unknown>)
    const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes))
    expect(await received(single.id)).toMatchObject({
      edit: true,
      model: "gpt-image-1",
      prompt: single.prompt,
      files: [{ field: "image", type: "image/png", base64: base64(one) }]
    })
    expect(await received(several.id)).toMatchObject({
      model: "gpt-image-1",
      n: 2,
      files: [
        { field: "image[]", base64: base64(one) },
        { field: "image[]", base64: base64(two) },
        { field: "mask", base64: base64(mask) }
      ]
    })
  })

  it("takes the JSON form with data URLs, and records edits as their own endpoint", async () => {
    const url = dataUrl(flatPng(16, 16, RED))
    const response = await postEdit(
      JSON.stringify({ model: "local/preview", prompt: "in the rain", images: [{ image_url: url }], size: "32x32" }),
      "application/json"
    )
    expect(response.status).toBe(200)
    const body = (await response.json()) as { data: Array<{ b64_json: string }> }
    expect(decodePng(decodeBase64(body.data[0]?.b64_json ?? "")).width).toBe(32)
    expect(await eventOf(response)).toMatchObject({ endpoint: "edits", status: 200, images: 1, model: "local/preview" })
  })

  it("streams an edit through the openai SDK: image_edit.completed events, one per image, byte-exact PNGs", async () => {
    const input = flatPng(16, 16, RED)
    const whole = await openai.images.edit({
      model: "local/preview",
      prompt: "make it blue",
      image: file(input, "a.png"),
      n: 2,
      size: "64x64"
    })
    const stream = await openai.images.edit({
      model: "local/preview",
      prompt: "make it blue",
      image: file(input, "a.png"),
      n: 2,
      size: "64x64",
      stream: true
    })
    const events: Array<{ type: string; b64_json?: string; output_format?: string }> = []
    for await (const event of stream) events.push(event)
    expect(events.map((event) => [event.type, event.output_format])).toEqual([
      ["image_edit.completed", "png"],
      ["image_edit.completed", "png"]
    ])
    // Completion order may differ from the answer's: the same two images either way.
    expect(events.map((event) => event.b64_json).sort()).toEqual(whole.data?.map((image) => image.b64_json).sort())
  })

  it("refuses every bad upload with a 4xx naming its field, before any upstream call", async () => {
    const { id, prompt } = steered("format=png")
    const png = file(flatPng(8, 8, RED), "a.png")
    const cases: ReadonlyArray<readonly [FormData, number, string]> = [
      [
        editForm({ model: "fake/gpt-image", prompt }, [["image", file(new TextEncoder().encode("just text"), "notes.png")]]),
        400,
        "image"
      ],
      [
        editForm({ model: "fake/gpt-image", prompt }, [["image", file(new Uint8Array(21 * 1024 * 1024), "huge.png")]]),
        413,
        "image"
      ],
      [
        editForm({ model: "fake/gpt-image", prompt }, [
          ["image", png],
          ["mask", file(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 0x10), "mask.jpg", "image/jpeg")]
        ]),
        400,
        "mask"
      ],
      [editForm({ model: "fake/gpt-image" }, [["image", png]]), 400, "prompt"],
      [editForm({ model: "fake/gpt-image", prompt, n: "0" }, [["image", png]]), 400, "n"],
      [editForm({ model: "fake/gpt-image", prompt }, []), 400, "image"],
      [editForm({ model: "fake/gpt-image", prompt, stream: "maybe" }, [["image", png]]), 400, "stream"],
      [editForm({ model: "replicate/flux-schnell", prompt, stream: "true" }, [["image", png]]), 400, "model"],
      [editForm({ model: "replicate/flux-schnell", prompt }, [["image", png]]), 400, "model"]
    ]
    for (const [form, status, param] of cases) {
      const response = await postEdit(form)
      expect(response.status, param).toBe(status)
      const error = await errorOf(response)
      expect(error).toMatchObject({ type: "invalid_request_error", param })
    }
    const json = await postEdit(
      JSON.stringify({ model: "local/preview", prompt, images: [{ image_url: "https://example.com/a.png" }] }),
      "application/json"
    )
    expect(json.status).toBe(400)
    expect(await errorOf(json)).toMatchObject({ param: "images" })
    const text = await postEdit("prompt=x", "text/plain")
    expect(text.status).toBe(415)
    expect((await upstreamCalls(id)).calls).toBe(0)
    // A model that edits but takes no mask is refused too, naming the models that do.
    const unsupported = await openai.images
      .edit({ model: "replicate/flux-schnell", prompt: "x", image: png })
      .catch((error: unknown) => error)
    expect(unsupported).toBeInstanceOf(OpenAI.BadRequestError)
    expect(String((unsupported as Error).message)).toContain("'local/preview'")
  })

  it("makes variations with the openai SDK's createVariation, offline and through an OpenAI-compatible upstream", async () => {
    const input = file(flatPng(16, 16, RED), "photo.png")
    const local = await openai.images.createVariation({ model: "local/preview", image: input, n: 2, size: "256x256" })
    expect(local.data).toHaveLength(2)
    expect(local.data?.[0]?.b64_json).not.toBe(local.data?.[1]?.b64_json)
    expect(decodePng(decodeBase64(local.data?.[0]?.b64_json ?? "")).width).toBe(256)
    const before = (await upstreamCalls("variation")).calls
    const forwarded = await openai.images.createVariation({ model: "fake/gpt-image", image: input })
    expect(forwarded.data).toHaveLength(1)
    const seen = await upstreamCalls("variation")
    expect(seen.calls).toBe(before + 1)
    expect(seen.requests.at(-1)).toMatchObject({ variation: true, model: "gpt-image-1", files: [{ field: "image" }] })
    const refused = await openai.images
      .createVariation({ model: "replicate/flux-schnell", image: input })
      .catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError)
    expect((refused as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("model")
  })

  it("answers response_format url with hosted copies of the same bytes, and stream: false as one JSON answer", async () => {
    const input = file(flatPng(16, 16, RED), "photo.png")
    const edit = (fields: Record<string, string>) =>
      postEdit(editForm({ model: "local/preview", prompt: "make it blue", size: "64x64", ...fields }, [["image", input]]))
    const inline = await edit({ stream: "false" })
    expect(inline.headers.get("content-type")).toContain("application/json")
    const expected = decodeBase64(((await inline.json()) as { data: Array<{ b64_json: string }> }).data[0]?.b64_json ?? "")
    const hosted = await edit({ response_format: "url" })
    const image = ((await hosted.json()) as { data: Array<{ url?: string; b64_json?: string }> }).data[0]
    expect(image?.b64_json).toBeUndefined()
    expect(image?.url).toMatch(/^https:\/\/gateway\.test\/images\/[0-9a-f]{32}\.png$/)
    const stored = await call(new URL(image?.url ?? "").pathname, { key: null })
    expect(new Uint8Array(await stored.arrayBuffer())).toEqual(expected)
  })

  it("refuses a JSON variation, a body that does not parse, and an unknown model, each as an OpenAI error", async () => {
    const png = flatPng(8, 8, RED)
    const variation = await call("/v1/images/variations", jsonPost({ model: "local/preview", image: dataUrl(png) }))
    expect(variation.status).toBe(400)
    expect(await errorOf(variation)).toMatchObject({
      param: "image",
      message: "Send a variation as multipart/form-data, with the image as 'image'."
    })
    const json = await postEdit('{"model": "local/preview", "prompt": ', "application/json")
    expect(json.status).toBe(400)
    expect(await errorOf(json)).toMatchObject({
      type: "invalid_request_error",
      code: "invalid_body",
      param: null,
      message: "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload."
    })
    const multipart = await postEdit("--x\r\nnot a part", "multipart/form-data; boundary=x")
    expect(multipart.status).toBe(400)
    expect(await errorOf(multipart)).toMatchObject({
      code: "invalid_body",
      param: null,
      message: "The multipart/form-data body could not be parsed."
    })
    const unknown = await postEdit(editForm({ model: "nobody/nothing", prompt: "x" }, [["image", file(png, "a.png")]]))
    expect(unknown.status).toBe(404)
    expect(await errorOf(unknown)).toMatchObject({ code: "model_not_found", param: "model" })
    const huge = await postEdit(
      editForm({ model: "local/preview", prompt: "x" }, [["image", file(new Uint8Array(21 * 1024 * 1024), "huge.png")]])
    )
    expect(await errorOf(huge)).toMatchObject({ code: "image_too_large", param: "image" })
    const text = await postEdit(
      editForm({ model: "local/preview", prompt: "x" }, [["image", file(new TextEncoder().encode("just text"), "a.png")]])
    )
    expect(await errorOf(text)).toMatchObject({ code: "invalid_value", param: "image" })
  })

  it("refuses an edit or a variation for a model that cannot take it with 400 model_not_supported, naming the models that can edit", async () => {
    const png = flatPng(8, 8, RED)
    const edit = await postEdit(
      editForm({ model: "replicate/flux-schnell", prompt: "recolour" }, [["image", file(png, "a.png")]])
    )
    expect(edit.status).toBe(400)
    const error = await errorOf(edit)
    expect(error).toMatchObject({ type: "invalid_request_error", code: "model_not_supported", param: "model" })
    expect(error.message).toContain("The model 'replicate/flux-schnell' does not edit images.")
    expect(error.message).toContain("Models that do: ")
    expect(error.message).toContain("local/preview")
    const variation = await call("/v1/images/variations", {
      method: "POST",
      body: editForm({ model: "replicate/flux-schnell" }, [["image", file(png, "a.png")]])
    })
    expect(variation.status).toBe(400)
    const refusal = await errorOf(variation)
    expect(refusal).toMatchObject({ code: "model_not_supported", param: "model" })
    expect(refusal.message).toContain("does not make variations of images")
  })

  it("answers an upstream's refusal of an edit as that refusal, after one call", async () => {
    const { id, prompt } = steered("faults=400")
    const response = await postEdit(editForm({ model: "fake/gpt-image", prompt }, [["image", file(flatPng(8, 8, RED), "a.png")]]))
    expect(response.status).toBe(400)
    expect(await errorOf(response)).toMatchObject({ type: "invalid_request_error", code: "upstream_rejected" })
    expect((await upstreamCalls(id)).calls).toBe(1)
  })

  it("describes both endpoints in /openapi.json as multipart", async () => {
    const spec = (await (await call("/openapi.json")).json()) as {
      paths: Record<string, Record<string, { requestBody?: { content?: Record<string, unknown> } }>>
    }
    for (const path of ["/v1/images/edits", "/v1/images/variations"]) {
      expect(Object.keys(spec.paths[path]?.post?.requestBody?.content ?? {})).toContain("multipart/form-data")
    }
  })
})

/** An image pasted into the last user message makes the chat reply an edit of it (the Vercel AI SDK's turn: in e2e). */
describe("chat with pasted images", () => {
  const pasted = (url: string, text = "make it blue"): OpenAI.Chat.ChatCompletionMessageParam => ({
    role: "user",
    content: [
      { type: "text", text },
      { type: "image_url", image_url: { url } }
    ]
  })
  const chat = (body: unknown) => call("/v1/chat/completions", jsonPost(body))
  /** The hosted image a chat reply links to, as a decoded PNG. */
  const linked = async (content: string) => {
    const url = /\((https:\/\/gateway\.test\/images\/[^)]+)\)/.exec(content)?.[1]
    expect(url).toBeDefined()
    return decodePng(new Uint8Array(await (await call(new URL(url ?? "").pathname, { key: null })).arrayBuffer()))
  }

  it("edits a pasted data: image, streamed and not, through the openai SDK", async () => {
    const input = flatPng(24, 16, RED)
    const completion = await openai.chat.completions.create({ model: "local/preview", messages: [pasted(dataUrl(input))] })
    // An edit keeps the pasted image's size (a generation without a size would be 512 x 512), and recolours it.
    const png = await linked(completion.choices[0]?.message.content ?? "")
    expect([png.width, png.height]).toEqual([24, 16])
    expect(Array.from(png.data.subarray(0, 3))).not.toEqual([200, 30, 30])
    const stream = await openai.chat.completions.create({
      model: "local/preview",
      messages: [pasted(dataUrl(input))],
      stream: true
    })
    let text = ""
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ""
    expect((await linked(text)).width).toBe(24)
  })

  it("reads this gateway's own hosted image from the bucket, and fetches no other URL", async () => {
    const first = await openai.chat.completions.create({
      model: "local/preview",
      messages: [pasted(dataUrl(flatPng(20, 20, RED)))]
    })
    const own = /\((https:\/\/gateway\.test\/images\/[^)]+)\)/.exec(first.choices[0]?.message.content ?? "")?.[1] ?? ""
    const again = await openai.chat.completions.create({ model: "local/preview", messages: [pasted(own, "now in green")] })
    expect((await linked(again.choices[0]?.message.content ?? "")).width).toBe(20)
    const remote = await openai.chat.completions
      .create({ model: "local/preview", messages: [pasted("https://example.com/cat.png")] })
      .catch((error: unknown) => error)
    expect(remote).toBeInstanceOf(OpenAI.BadRequestError)
    expect((remote as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("messages")
    expect(String((remote as Error).message)).toContain("ALLOW_REMOTE_IMAGE_URLS")
    const notImage = await openai.chat.completions
      .create({ model: "local/preview", messages: [pasted(`data:image/png;base64,${btoa("plain text")}`)] })
      .catch((error: unknown) => error)
    expect((notImage as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("messages")
    // An edit's images are written into the reply's text, so only plain base64 may pass, as for generations.
    const dirty = await chat({
      model: "fake/gpt-image",
      messages: [pasted(dataUrl(flatPng(8, 8, RED)), steered("faults=dirty").prompt)]
    })
    expect(dirty.status).toBe(502)
    expect(await dirty.text()).not.toContain("evil")
    const noEdits = await openai.chat.completions
      .create({ model: "replicate/flux-schnell", messages: [pasted(dataUrl(flatPng(8, 8, RED)))] })
      .catch((error: unknown) => error)
    expect((noEdits as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("model")
  })
})
