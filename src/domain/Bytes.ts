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

/**
 * A stream's bytes, read only up to `limit`: `undefined` (and the stream cancelled) once it has more, so a
 * body of unknown length never holds more than the limit in memory.
 */
export const readBounded = async (
  body: ReadableStream<Uint8Array>,
  limit: number,
  signal?: AbortSignal
): Promise<Uint8Array | undefined> => {
  const reader = body.getReader()
  // A caller that gives up (a timeout, a client gone) stops the read and lets the body go.
  signal?.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true })
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
