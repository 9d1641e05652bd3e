import { describe, expect, it } from "vitest"
import { concatBytes, readBounded } from "../../src/domain/Bytes.ts"

/** A stream of the given chunks, recording whether it was cancelled (a bounded read must let the rest go). */
const streamOf = (chunks: ReadonlyArray<Uint8Array>) => {
  const state = { cancelled: false, pulled: 0 }
  const stream = new ReadableStream<Uint8Array>({
    pull: (controller) => {
      const next = chunks[state.pulled++]
      if (next === undefined) controller.close()
      else controller.enqueue(next)
    },
    cancel: () => {
      state.cancelled = true
    }
  })
  return { stream, state }
}
const bytes = (...values: Array<number>) => Uint8Array.from(values)

/** A byte stream (what a fetch body is), enqueuing `total` bytes counting up mod 251, `chunk` at a time. */
const byteStream = (total: number, chunk: number) => {
  const state = { cancelled: false, sent: 0 }
  const stream = new ReadableStream({
    type: "bytes",
    pull: (controller) => {
      if (state.sent >= total) {
        controller.close()
        // A byte source answers a read still waiting for bytes when it closes (the streams spec's rule).
        return controller.byobRequest?.respond(0)
      }
      const size = Math.min(chunk, total - state.sent)
      controller.enqueue(Uint8Array.from({ length: size }, (_, i) => (state.sent + i) % 251))
      state.sent += size
    },
    cancel: () => {
      state.cancelled = true
    }
  })
  return { stream, state }
}
const counting = (total: number) => Uint8Array.from({ length: total }, (_, i) => i % 251)

describe("bytes", () => {
  it("joins chunks in order, and hands a single whole chunk back as it is", () => {
    expect(concatBytes([bytes(1, 2), bytes(), bytes(3)], 3)).toEqual(bytes(1, 2, 3))
    const one = bytes(7, 8)
    expect(concatBytes([one], 2)).toBe(one)
    expect(concatBytes([], 0)).toEqual(bytes())
  })

  it("reads a stream up to its limit exactly, across chunks", async () => {
    const { stream, state } = streamOf([bytes(1, 2), bytes(3), bytes(4, 5)])
    expect(await readBounded(stream, 5)).toEqual(bytes(1, 2, 3, 4, 5))
    expect(state.cancelled).toBe(false)
  })

  it("gives up at the first byte past the limit, cancels the stream and reads no further", async () => {
    const { stream, state } = streamOf([bytes(1, 2), bytes(3, 4), bytes(5), bytes(6)])
    expect(await readBounded(stream, 3)).toBeUndefined()
    expect(state.cancelled).toBe(true)
    expect(state.pulled).toBeLessThanOrEqual(3)
  })

  it("stops reading when its signal aborts", async () => {
    const controller = new AbortController()
    let cancelled = false
    const endless = new ReadableStream<Uint8Array>({
      pull: () => new Promise(() => {}),
      cancel: () => {
        cancelled = true
      }
    })
    const reading = readBounded(endless, 10, controller.signal)
    controller.abort()
    await expect(reading).rejects.toThrow("stopped before the body's end")
    expect(cancelled).toBe(true)
    // A byte stream too: the cancelled read's buffer is never handed on.
    const bytesController = new AbortController()
    const waiting = readBounded(
      new ReadableStream({ type: "bytes", pull: () => new Promise(() => {}) }),
      10,
      bytesController.signal
    )
    bytesController.abort()
    await expect(waiting).rejects.toThrow("stopped before the body's end")
  })

  it("reads an empty stream as no bytes", async () => {
    expect(await readBounded(streamOf([]).stream, 0)).toEqual(bytes())
  })

  it("reads a byte stream into one growing buffer: every byte in order, past the first buffer's size", async () => {
    const total = 1_300_000 // more than two growths of the first buffer
    const { stream, state } = byteStream(total, 16_384)
    expect(await readBounded(stream, total)).toEqual(counting(total))
    expect(state.cancelled).toBe(false)
  })

  it("refuses a byte stream one byte over the limit, and takes one of exactly the limit", async () => {
    const over = byteStream(1000, 64)
    expect(await readBounded(over.stream, 999)).toBeUndefined()
    expect(over.state.cancelled).toBe(true)
    expect(over.state.sent).toBeLessThan(1000 + 64)
    expect(await readBounded(byteStream(1000, 64).stream, 1000)).toEqual(counting(1000))
    expect(await readBounded(byteStream(0, 64).stream, 10)).toEqual(new Uint8Array())
  })
})
