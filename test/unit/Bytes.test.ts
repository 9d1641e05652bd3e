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
    await expect(reading).resolves.toEqual(bytes())
    expect(cancelled).toBe(true)
  })

  it("reads an empty stream as no bytes", async () => {
    expect(await readBounded(streamOf([]).stream, 0)).toEqual(bytes())
  })
})
