import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { UpstreamMalformed } from "../../src/domain/Errors.ts"
import { ImageGenerationRequest, ImagesResponse } from "../../src/domain/ImageGeneration.ts"
import { findStringValues, findTopLevelString } from "../../src/domain/JsonBytes.ts"
import type { ModelEntry } from "../../src/domain/Model.ts"
import { imagesResponseBody } from "../../src/http/ImagesHttp.ts"
import { imageBytesOf } from "../../src/services/upstreams/AiSdkUpstream.ts"
import { imageFromBase64 } from "../../src/services/upstreams/UpstreamCalls.ts"

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (value: Uint8Array) => new TextDecoder().decode(value)
const found = (json: string, key = "image") => {
  const result = findTopLevelString(bytes(json), key)
  return result._tag === "Found" ? text(result.raw) : result._tag
}

describe("findTopLevelString", () => {
  it("finds a string property of a flat object, whatever the order and spacing", () => {
    assert.strictEqual(found('{"provider":"replicate","image":"iVBOR"}'), "iVBOR")
    assert.strictEqual(found(' {\n "image" : "abc" ,\t"provider": "x" }\n'), "abc")
    assert.strictEqual(found('{"n":3,"ok":true,"none":null,"f":-1.5e3,"image":"abc"}'), "abc")
    assert.strictEqual(found('{"note":"the \\"image\\" key","image":"abc"}'), "abc")
    assert.strictEqual(found('{"im\\u0061ge":"escaped key"}'), "escaped key")
    assert.strictEqual(found('{"image":"a\\"b"}'), 'a\\"b')
    assert.strictEqual(found('{"image":"a\\\\"}'), "a\\\\")
  })

  it("reads a view into a larger buffer, and returns a view of the same bytes", () => {
    const whole = bytes('xxxx{"provider":"p","image":"abc"}yyyy')
    const view = whole.subarray(4, whole.length - 4)
    const result = findTopLevelString(view, "image")
    assert.strictEqual(result._tag, "Found")
    if (result._tag !== "Found") return
    assert.strictEqual(text(result.raw), "abc")
    assert.strictEqual(result.raw.buffer, whole.buffer)
    assert.notInstanceOf(result.raw, Buffer)
  })

  it("says Missing when the key is absent, Unsupported for what it does not read", () => {
    assert.strictEqual(found('{"provider":"x"}'), "Missing")
    assert.strictEqual(found("{}"), "Missing")
    assert.strictEqual(found('{"nested":{"image":"x"},"image":"y"}'), "Unsupported")
    assert.strictEqual(found('["image"]'), "Unsupported")
    assert.strictEqual(found("<html>image</html>"), "Unsupported")
    assert.strictEqual(found('{"image":"unterminated'), "Unsupported")
    assert.strictEqual(found('{"image":"x"} trailing'), "Unsupported")
  })
})

describe("imageBytesOf", () => {
  const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
  it("reads the fast path, data URLs, and escaped forms through the schema", () => {
    assert.strictEqual(text(imageBytesOf(bytes(JSON.stringify({ provider: "x", image: png }))) as Uint8Array), png)
    const dataUrl = imageFromBase64(imageBytesOf(bytes(JSON.stringify({ image: `data:image/png;base64,${png}` }))) as Uint8Array)
    assert.strictEqual(text((dataUrl as { base64: Uint8Array }).base64), png)
    // PHP-style escaped slashes and a nested extra field both take the schema path
    const nested = `{"image":"${png}","meta":{"seed":1}}`
    assert.strictEqual(text(imageBytesOf(bytes(nested)) as Uint8Array), png)
    // PHP-style escaped slashes are copied as they are: still valid JSON, and JSON parsers undo them
    const escaped = `{"image":"${png.replaceAll("/", "\\/")}"}`
    const copied = text(imageBytesOf(bytes(escaped)) as Uint8Array)
    assert.strictEqual(JSON.parse(`"${copied}"`), png)
  })
  it("rejects bodies without an image", () => {
    for (const body of ['{"provider":"x"}', "<html></html>", '{"image":""}', '{"image":5}']) {
      assert.instanceOf(imageBytesOf(bytes(body)), UpstreamMalformed, body)
    }
  })
})

describe("findStringValues", () => {
  const values = (json: string, key: string) => {
    const found = findStringValues(bytes(json), key)
    return found._tag === "Found" ? found.values.map(text) : found._tag
  }
  it("finds every value of a key at any depth, in order, and only values of keys", () => {
    const answer = JSON.stringify({
      created: 1,
      data: [{ b64_json: "AAA", revised_prompt: 'say "b64_json": "no"' }, { b64_json: "BBB" }],
      usage: { total_tokens: 5 }
    })
    assert.deepStrictEqual(values(answer, "b64_json"), ["AAA", "BBB"])
    assert.deepStrictEqual(values(' { "b64_json" : "x" , "n": [1, {"b64_json":"y"}] } ', "b64_json"), ["x", "y"])
    assert.deepStrictEqual(values('{"url":"https://a/b.png"}', "b64_json"), [])
    assert.deepStrictEqual(values('{"b64_json":["not","a","value"]}', "b64_json"), [])
  })
  it("says so when a string never ends", () => {
    assert.strictEqual(values('{"data":[{"b64_json":"AAAA', "b64_json"), "Unsupported")
  })
})

describe("imagesResponseBody", () => {
  const decode = Schema.decodeUnknownSync(ImagesResponse)
  const model = {} as ModelEntry
  const result = {
    created: 1_790_000_000,
    model,
    failed: 0,
    images: [
      { base64: bytes("iVBORw0KGgo="), format: "png" as const, attempts: 1 },
      { base64: bytes("/9j/4AAQ"), format: "jpeg" as const, attempts: 2 }
    ]
  }
  it("writes JSON that the contract's schema decodes, for b64_json and url", async () => {
    const body = async (request: ImageGenerationRequest) => JSON.parse(await imagesResponseBody(request, result).text())
    const b64 = decode(await body(new ImageGenerationRequest({ prompt: "x" })))
    assert.deepStrictEqual(b64, {
      created: 1_790_000_000,
      data: [{ b64_json: "iVBORw0KGgo=" }, { b64_json: "/9j/4AAQ" }],
      output_format: "png"
    })
    const url = decode(await body(new ImageGenerationRequest({ prompt: "x", response_format: "url" })))
    assert.deepStrictEqual(
      url.data.map((image) => image.url),
      ["data:image/png;base64,iVBORw0KGgo=", "data:image/jpeg;base64,/9j/4AAQ"]
    )
  })
  it("ends with images_failed when some of the images failed, as a written-as-they-finish answer does", async () => {
    const partial = { ...result, failed: 2 }
    const body = decode(JSON.parse(await imagesResponseBody(new ImageGenerationRequest({ prompt: "x" }), partial).text()))
    assert.strictEqual(body.images_failed, 2)
    assert.strictEqual(body.data.length, 2)
  })
})
