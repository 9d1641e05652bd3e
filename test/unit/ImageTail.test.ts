import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { HEAD_BYTES, openImageValue, openValueStart } from "../../src/domain/ImageTail.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const LIMITS = { maxBytes: 32 * 1024 * 1024, timeoutMs: 5_000 }

/** A stream of the given bytes, `sizes` at a time (cycled), recording whether it was cancelled. */
const chunked = (body: Uint8Array, sizes: ReadonlyArray<number>, options: { readonly stallAfter?: number } = {}) => {
  const state = { cancelled: false, sent: 0 }
  let turn = 0
  const stream = new ReadableStream<Uint8Array>({
    pull: (controller) => {
      if (options.stallAfter !== undefined && state.sent >= options.stallAfter) return new Promise(() => {})
      if (state.sent >= body.byteLength) return controller.close()
      const size = Math.max(1, sizes[turn++ % sizes.length] ?? 1)
      controller.enqueue(body.slice(state.sent, state.sent + size))
      state.sent += size
    },
    cancel: () => {
      state.cancelled = true
    }
  })
  return { stream, state }
}

/** Base64-looking text of `length` characters (the alphabet, deterministic). */
const base64Text = (length: number) => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return `iVBORw0KGgoAAAANSUhEUg${Array.from({ length: length - 22 }, (_, i) => alphabet[(i * 7) % 64]).join("")}`
}

const readAll = async (stream: ReadableStream<Uint8Array>) => decoder.decode(await new Response(stream).arrayBuffer())

describe("openValueStart", () => {
  it("finds where an open string value starts, at the top level or nested, and nothing else", () => {
    const at = (text: string, key = "image") => openValueStart(encoder.encode(text), key)
    expect(at('{"provider":"x","image":"iVBOR')).toBe('{"provider":"x","image":"'.length)
    expect(at('{"created":1,"data":[{"b64_json" : "iVBOR', "b64_json")).toBe('{"created":1,"data":[{"b64_json" : "'.length)
    // Complete within the bytes: small, read whole.
    expect(at('{"image":"iVBOR"}')).toBeUndefined()
    // The key's name inside another string is not the key; a value that is no string is not the value.
    expect(at('{"note":"\\"image\\":\\"x')).toBeUndefined()
    expect(at('{"image":12,"other":"iVBOR')).toBeUndefined()
    expect(at('{"other":"iVBOR')).toBeUndefined()
  })
})

describe("openImageValue", () => {
  const body = (value: string, after = "}") => encoder.encode(`{"provider":"replicate","image":"${value}"${after}`)

  it("passes a large value through between the caller's bytes, every byte in order, whatever the chunking", async () => {
    const value = base64Text(300_000)
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1000, max: 90_000 }), { minLength: 1, maxLength: 5 }), async (sizes) => {
        const source = chunked(body(value, ',"seed":3}'), sizes)
        const opened = await openImageValue(source.stream, "image", LIMITS)
        expect(opened._tag).toBe("Open")
        if (opened._tag !== "Open") return
        const text = await readAll(opened.tail.frame([encoder.encode("<"), opened.head], encoder.encode(">")))
        expect(text).toBe(`<${value}>`)
        expect(await opened.tail.ended).toBe("written")
      }),
      { numRuns: 25 }
    )
  })

  it("finds the closing quote past escaped quotes and backslashes split across chunks", async () => {
    // Escapes are valid JSON string content, copied as they are; only an unescaped quote ends the value.
    const value = `${base64Text(HEAD_BYTES + 1000)}\\"x\\\\\\"y\\\\`
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }), async (sizes) => {
        const opened = await openImageValue(chunked(body(value), [HEAD_BYTES + 995, ...sizes]).stream, "image", LIMITS)
        if (opened._tag !== "Open") throw new Error(opened._tag)
        expect(await readAll(opened.tail.frame([opened.head], new Uint8Array()))).toBe(value)
      }),
      { numRuns: 40 }
    )
  })

  it("fails the stream when the answer breaks off inside the image, and cancels the upstream", async () => {
    const whole = body(base64Text(200_000))
    const source = chunked(whole.subarray(0, 150_000), [40_000])
    const opened = await openImageValue(source.stream, "image", LIMITS)
    if (opened._tag !== "Open") throw new Error(opened._tag)
    await expect(readAll(opened.tail.frame([opened.head], encoder.encode("}")))).rejects.toThrow("broke off inside the image")
    expect(await opened.tail.ended).toBe("broken")
  })

  it("fails the stream when what follows the image is not valid JSON, or goes on too long", async () => {
    for (const after of ["", '"', ',"x":}', `,"pad":"${"a".repeat(70_000)}"}`]) {
      const opened = await openImageValue(chunked(body(base64Text(100_000), after), [30_000]).stream, "image", LIMITS)
      if (opened._tag !== "Open") throw new Error(opened._tag)
      await expect(readAll(opened.tail.frame([opened.head], new Uint8Array()))).rejects.toThrow(/not valid JSON|too long/)
      expect(await opened.tail.ended).toBe("broken")
    }
  })

  it("fails the stream past the byte limit, and when the rest does not come in time", async () => {
    const big = chunked(body(base64Text(400_000)), [50_000])
    const opened = await openImageValue(big.stream, "image", { maxBytes: 200_000, timeoutMs: 5_000 })
    if (opened._tag !== "Open") throw new Error(opened._tag)
    await expect(readAll(opened.tail.frame([], new Uint8Array()))).rejects.toThrow("UPSTREAM_MAX_BYTES (200000 bytes)")
    expect(big.state.cancelled).toBe(true)

    const stalled = chunked(body(base64Text(400_000)), [80_000], { stallAfter: 160_000 })
    const slow = await openImageValue(stalled.stream, "image", { maxBytes: LIMITS.maxBytes, timeoutMs: 50 })
    if (slow._tag !== "Open") throw new Error(slow._tag)
    await expect(readAll(slow.tail.frame([], new Uint8Array()))).rejects.toThrow("did not end in time")
    expect(stalled.state.cancelled).toBe(true)
    expect(await slow.tail.ended).toBe("broken")
  })

  it("lets the upstream go when the reader cancels, or when the image is never written", async () => {
    const source = chunked(body(base64Text(400_000)), [50_000])
    const opened = await openImageValue(source.stream, "image", LIMITS)
    if (opened._tag !== "Open") throw new Error(opened._tag)
    const reader = opened.tail.frame([opened.head], new Uint8Array()).getReader()
    await reader.read()
    await reader.cancel()
    expect(await opened.tail.ended).toBe("cancelled")
    expect(source.state.cancelled).toBe(true)

    const unwritten = chunked(body(base64Text(400_000)), [50_000])
    const dropped = await openImageValue(unwritten.stream, "image", LIMITS)
    if (dropped._tag !== "Open") throw new Error(dropped._tag)
    dropped.tail.cancel()
    expect(await dropped.tail.ended).toBe("cancelled")
    expect(unwritten.state.cancelled).toBe(true)
    expect(() => dropped.tail.frame([], new Uint8Array())).toThrow("read once")
  })

  it("reads whole what it cannot pass through: a small body, a late value, an escape at its start; bounded", async () => {
    const small = body(base64Text(1000))
    const smallRead = await openImageValue(chunked(small, [100]).stream, "image", LIMITS)
    expect(smallRead._tag === "Whole" && decoder.decode(smallRead.body)).toBe(decoder.decode(small))
    const late = encoder.encode(`{"pad":"${"a".repeat(2 * HEAD_BYTES)}","image":"${base64Text(100_000)}"}`)
    const lateRead = await openImageValue(chunked(late, [30_000]).stream, "image", LIMITS)
    expect(lateRead._tag === "Whole" && decoder.decode(lateRead.body)).toBe(decoder.decode(late))
    const escaped = body(`data:image\\/png;base64,${base64Text(100_000)}`)
    expect((await openImageValue(chunked(escaped, [30_000]).stream, "image", LIMITS))._tag).toBe("Whole")
    const tooLarge = chunked(late, [30_000])
    expect(await openImageValue(tooLarge.stream, "image", { maxBytes: 150_000, timeoutMs: 1000 })).toEqual({
      _tag: "TooLarge"
    })
    expect(tooLarge.state.cancelled).toBe(true)
  })
})
