import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { HttpApiError } from "effect/http-api"
import fc from "fast-check"
import { decodedLength, detectBase64ImageFormat, detectImageFormat, isBase64Text } from "../../src/domain/ImageFormat.ts"
import { ImageGenerationRequest } from "../../src/domain/ImageGeneration.ts"
import { nearestAspectRatio, parseSize } from "../../src/domain/ImageSize.ts"
import { splitImages } from "../../src/domain/Upstream.ts"
import { toBadRequest } from "../../src/http/RequestValidationLive.ts"

const ratios = ["1:1", "16:9"]

describe("size to aspect ratio", () => {
  it("parses WxH and auto", () => {
    assert.deepStrictEqual(parseSize("1792x1024"), { _tag: "Exact", width: 1792, height: 1024 })
    assert.deepStrictEqual(parseSize("auto"), { _tag: "Auto" })
    assert.deepStrictEqual(parseSize(null), { _tag: "Auto" })
    assert.deepStrictEqual(parseSize(undefined), { _tag: "Auto" })
  })

  it("maps to the nearest supported ratio on a log scale", () => {
    assert.strictEqual(nearestAspectRatio(parseSize("1024x1024"), ratios), "1:1")
    assert.strictEqual(nearestAspectRatio(parseSize("512x512"), ratios), "1:1")
    assert.strictEqual(nearestAspectRatio(parseSize("1792x1024"), ratios), "16:9")
    assert.strictEqual(nearestAspectRatio(parseSize("1536x1024"), ratios), "16:9") // 1.5 is nearer 1.78 than 1 on a log scale
    assert.strictEqual(nearestAspectRatio(parseSize("1024x1792"), ratios), "1:1") // portrait: 1:1 is the nearest of these two
    const wide = ["1:1", "16:9", "9:16", "4:3", "3:4", "21:9"]
    assert.strictEqual(nearestAspectRatio(parseSize("1024x1792"), wide), "9:16")
    assert.strictEqual(nearestAspectRatio(parseSize("1024x768"), wide), "4:3")
    assert.strictEqual(nearestAspectRatio(parseSize("2560x1080"), wide), "21:9")
  })

  it("leaves auto, and models without ratios, to the model default", () => {
    assert.isUndefined(nearestAspectRatio(parseSize("auto"), ratios))
    assert.isUndefined(nearestAspectRatio(parseSize("1024x1024"), []))
  })
})

describe("image format detection", () => {
  const bytes = (...values: Array<number>) => new Uint8Array(values)
  it("detects PNG, JPEG and WebP from magic bytes", () => {
    assert.strictEqual(detectImageFormat(bytes(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0)), "png")
    assert.strictEqual(detectImageFormat(bytes(0xff, 0xd8, 0xff, 0xe0)), "jpeg")
    assert.strictEqual(detectImageFormat(bytes(0x52, 0x49, 0x46, 0x46, 1, 2, 3, 4, 0x57, 0x45, 0x42, 0x50)), "webp")
  })
  it("rejects everything else, including RIFF that is not WebP and truncated input", () => {
    assert.isUndefined(detectImageFormat(bytes(0x47, 0x49, 0x46, 0x38)))
    assert.isUndefined(detectImageFormat(bytes(0x52, 0x49, 0x46, 0x46, 1, 2, 3, 4, 0x41, 0x56, 0x49, 0x20)))
    assert.isUndefined(detectImageFormat(bytes(0x89, 0x50)))
    assert.isUndefined(detectImageFormat(bytes()))
  })
  it("reads base64 without decoding the whole image", () => {
    assert.strictEqual(detectBase64ImageFormat("iVBORw0KGgoAAAANSUhEUgAA"), "png")
    assert.strictEqual(detectBase64ImageFormat("/9j/4AAQSkZJRgABAQ"), "jpeg")
    assert.strictEqual(detectBase64ImageFormat(btoa("RIFF\u0000\u0000\u0000\u0000WEBPVP8 ")), "webp")
    assert.isUndefined(detectBase64ImageFormat("<html>"))
    assert.isUndefined(detectBase64ImageFormat(""))
  })
})

const decode = Schema.decodeUnknownEffect(ImageGenerationRequest)

/** What a client would see for this body: the BadRequest the edge sends. */
const rejection = (input: unknown) =>
  decode(input).pipe(
    Effect.flip,
    Effect.map((cause) => toBadRequest(new HttpApiError.HttpApiSchemaError({ kind: "Payload", cause })))
  )

describe("ImageGenerationRequest", () => {
  it.effect("accepts every OpenAI field, nulls, and unknown fields", () =>
    Effect.gen(function* () {
      const request = yield* decode({
        prompt: "a cat",
        model: null,
        n: 2,
        size: "1024x1536",
        quality: "hd",
        style: "vivid",
        background: "transparent",
        moderation: "low",
        output_format: "webp",
        output_compression: 50,
        response_format: "url",
        stream: false,
        partial_images: 0,
        user: "u",
        future_field: [1, 2, 3]
      })
      assert.strictEqual(request.n, 2)
      assert.strictEqual(request.response_format, "url")
      assert.notProperty(request, "future_field")
    })
  )

  it.effect("names the field in every rejection", () =>
    Effect.gen(function* () {
      const cases: Array<[unknown, string | null]> = [
        [{}, "prompt"],
        [{ prompt: "" }, "prompt"],
        [{ prompt: "x".repeat(32001) }, "prompt"],
        [{ prompt: "x", n: 0 }, "n"],
        [{ prompt: "x", n: 2.5 }, "n"],
        [{ prompt: "x", n: "2" }, "n"],
        [{ prompt: "x", size: "1024" }, "size"],
        [{ prompt: "x", response_format: "png" }, "response_format"],
        [{ prompt: "x", stream: "yes" }, "stream"],
        [[], null]
      ]
      for (const [input, param] of cases) {
        const error = yield* rejection(input)
        assert.strictEqual(error.param, param, JSON.stringify(input).slice(0, 60))
        if (param !== null) assert.include(error.message, `'${param}'`)
        assert.notInclude(error.message, "| null")
      }
    })
  )

  it.effect("32000 characters is still a valid prompt", () =>
    Effect.gen(function* () {
      const request = yield* decode({ prompt: "x".repeat(32000) })
      assert.strictEqual(request.prompt.length, 32000)
    })
  )
})

describe("decodedLength", () => {
  it("is the length of the bytes base64 text stands for, padded or not (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (data, padded) => {
        const text = btoa(String.fromCharCode(...data))
        const written = padded ? text : text.replace(/=+$/, "")
        return decodedLength(new TextEncoder().encode(written)) === data.length
      })
    )
  })
})

describe("isBase64Text", () => {
  const bytes = (text: string) => new TextEncoder().encode(text)
  const clean = btoa(String.fromCharCode(...Array.from({ length: 3000 }, (_, i) => (i * 31 + 7) & 0xff)))
  it("accepts base64, padded or not", () => {
    assert.isTrue(isBase64Text(bytes(clean)))
    assert.isTrue(isBase64Text(bytes("iVBORw0KGgo=")))
    assert.isTrue(isBase64Text(bytes("iVBORw0KGgo")))
    assert.isTrue(isBase64Text(bytes("YQ==")))
  })
  it("refuses anything else anywhere in it: newlines, quotes, escapes, markdown, padding in the middle", () => {
    for (const dirty of ["\n", "\r", '"', "\\", ")", "](x)", " ", "=", "%", "\u0000", "é"]) {
      const text = `${clean.slice(0, 2000)}${dirty}${clean.slice(2000)}`
      assert.isFalse(isBase64Text(bytes(text)), JSON.stringify(dirty))
    }
    assert.isFalse(isBase64Text(bytes("")))
  })
  it("holds for any image bytes and any foreign byte at any place (property)", () => {
    const alphabet = new Set(
      Array.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_", (c) => c.charCodeAt(0))
    )
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 400 }),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }).filter((byte) => !alphabet.has(byte)),
        (data, at, foreign) => {
          const text = bytes(btoa(String.fromCharCode(...data)))
          const dirty = new Uint8Array(text.length + 1)
          const cut = at % (text.length + 1)
          dirty.set(text.subarray(0, cut))
          dirty[cut] = foreign
          dirty.set(text.subarray(cut), cut + 1)
          return isBase64Text(text) && !isBase64Text(dirty)
        }
      ),
      { numRuns: 2000, seed: 7 }
    )
  })
})

describe("splitting n images into calls", () => {
  it("gives each call at most perCall images and the index of its first, covering every image once", () => {
    assert.deepStrictEqual(splitImages(7, 4), [
      { n: 4, first: 0 },
      { n: 3, first: 4 }
    ])
    assert.deepStrictEqual(splitImages(1, 1), [{ n: 1, first: 0 }])
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10 }), (n, perCall) => {
        const parts = splitImages(n, perCall)
        const indices = parts.flatMap((part) => Array.from({ length: part.n }, (_, i) => part.first + i))
        return (
          parts.every((part) => part.n >= 1 && part.n <= perCall) &&
          indices.join() === Array.from({ length: n }, (_, i) => i).join()
        )
      })
    )
  })
})
