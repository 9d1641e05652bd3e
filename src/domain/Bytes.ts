/** Byte arrays as one, in order. */
export const concatBytes = (chunks: ReadonlyArray<Uint8Array>, size: number): Uint8Array => {
  if (chunks.length === 1 && chunks[0]?.byteLength === size) return chunks[0]
  const joined = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    joined.set(chunk, offset)
    offset += chunk.byteLength
  }
  return joined
}

/** The first buffer of a bounded read; it doubles as the body turns out larger (a 1.4 MB image: two growths). */
const FIRST_BUFFER = 512 * 1024

/**
 * A stream's bytes, read only up to `limit`: `undefined` (and the stream cancelled) once it has more, so a
 * body of unknown length never holds more than the limit in memory.
 *
 * A byte stream (a fetch body) is read into one growing buffer with workerd's `readAtLeast`, which fills the
 * free part of the buffer natively: a few JavaScript steps per body instead of one per network chunk (a 1.4 MB
 * chunked answer arrives in hundreds). Elsewhere (Node, a stream of another kind) the chunks are read one by one.
 */
export const readBounded = async (
  body: ReadableStream<Uint8Array>,
  limit: number,
  signal?: AbortSignal
): Promise<Uint8Array | undefined> => {
  let byob: ReadableStreamBYOBReader | undefined
  try {
    byob = body.getReader({ mode: "byob" })
  } catch {
    // Not a byte stream: the default reader below.
  }
  const reader = byob ?? body.getReader()
  // A caller that gives up (a timeout, a client gone) stops the read and lets the body go.
  signal?.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true })
  const bytes = await (byob === undefined
    ? readChunks(reader as ReadableStreamDefaultReader<Uint8Array>, limit)
    : readInto(byob, limit))
  // What a cancelled read holds is not the body: never hand it on as if it were.
  if (signal?.aborted === true) throw new Error("the read was stopped before the body's end")
  return bytes
}

const readChunks = async (reader: ReadableStreamDefaultReader<Uint8Array>, limit: number) => {
  const chunks: Array<Uint8Array> = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel()
      return undefined
    }
    chunks.push(value)
  }
  return concatBytes(chunks, size)
}

const readInto = async (reader: ReadableStreamBYOBReader, limit: number) => {
  // workerd's extension; Node's BYOB reader has only read(), which returns whatever one chunk brought.
  const native = typeof (reader as { readAtLeast?: unknown }).readAtLeast === "function"
  // One byte past the limit is room enough to tell "exactly the limit" from "more".
  let buffer = new ArrayBuffer(Math.min(FIRST_BUFFER, limit + 1))
  let size = 0
  for (;;) {
    if (size === buffer.byteLength) {
      if (size > limit) {
        await reader.cancel()
        return undefined
      }
      const grown = new Uint8Array(Math.min(buffer.byteLength * 2, limit + 1))
      grown.set(new Uint8Array(buffer, 0, size))
      buffer = grown.buffer
    }
    const free = new Uint8Array(buffer, size, buffer.byteLength - size)
    const { done, value } = await (native ? reader.readAtLeast(free.byteLength, free) : reader.read(free))
    // The read transfers the buffer: what comes back is a view of it (empty when the stream ended, none when
    // the read was cancelled, and then the buffer is gone).
    if (value === undefined) return new Uint8Array()
    buffer = value.buffer as ArrayBuffer
    size += value.byteLength
    if (done) break
  }
  if (size > limit) {
    await reader.cancel()
    return undefined
  }
  return new Uint8Array(buffer, 0, size)
}
