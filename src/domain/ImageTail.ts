import { Buffer } from "node:buffer"

/**
 * Passing an image through as it arrives: the upstream's JSON body is read only up to where the image's
 * string value starts (and its first bytes, enough to know it is an image); the rest of the value is then
 * handed on chunk by chunk, scanned natively for its closing quote, never held whole. What follows the
 * value must complete valid JSON, and the body must end within the byte limit and the time limit: an
 * answer cut off, malformed or too large fails the stream, so it is never passed on as a valid image.
 */

const QUOTE = 0x22
const QUOTE_NEEDLE = Uint8Array.of(QUOTE)
const BACKSLASH = 0x5c
const COLON = 0x3a

/** Bytes read before the image starts: a body whose image value does not start within them is read whole. */
export const HEAD_BYTES = 64 * 1024
/** Bytes of each later read. Several chunks are in flight at most: 128 KiB each keeps 3 MB to about 24 steps. */
const CHUNK_BYTES = 128 * 1024
/** What may follow the image value (other fields, the closing braces). */
const AFTER_LIMIT = 64 * 1024
/** Base64 characters needed before committing to an image: a data URL's prefix and the magic numbers. */
const MIN_HEAD = 256

const isWhitespace = (byte: number | undefined) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09

/** Index of the first unescaped quote at or after `from`, or -1; `carried`: backslashes ending the previous chunk. */
const closingQuote = (bytes: Buffer, from: number, carried = 0): number => {
  let search = from
  for (;;) {
    const quote = bytes.indexOf(QUOTE_NEEDLE, search)
    if (quote === -1) return -1
    let backslashes = 0
    while (quote - 1 - backslashes >= 0 && bytes[quote - 1 - backslashes] === BACKSLASH) backslashes++
    if (quote - backslashes === 0) backslashes += carried
    if (backslashes % 2 === 0) return quote
    search = quote + 1
  }
}

const trailingBackslashes = (bytes: Uint8Array, carried: number) => {
  let count = 0
  while (count < bytes.length && bytes[bytes.length - 1 - count] === BACKSLASH) count++
  return count === bytes.length ? carried + count : count
}

const decoder = new TextDecoder()

/**
 * Where the string value of `key` starts in the first bytes of a JSON body (the first at any depth, in
 * document order), if it starts there and is still open at their end. `undefined` otherwise: the key is not
 * there, the value is not a string, or it ends within these bytes (a small value: the body is read whole).
 */
export const openValueStart = (input: Uint8Array, key: string): number | undefined => {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  let pendingKey: string | undefined
  let i = 0
  while (i < bytes.length) {
    if (bytes[i] !== QUOTE) {
      if (!isWhitespace(bytes[i]) && bytes[i] !== COLON) pendingKey = undefined
      i++
      continue
    }
    const end = closingQuote(bytes, i + 1)
    if (end === -1) return pendingKey === key ? i + 1 : undefined
    if (pendingKey === key) return undefined
    let next = end + 1
    while (isWhitespace(bytes[next])) next++
    if (bytes[next] === COLON) {
      const raw = decoder.decode(bytes.subarray(i + 1, end))
      pendingKey = raw.includes("\\") ? undefined : raw
      i = next + 1
      continue
    }
    pendingKey = undefined
    i = end + 1
  }
  return undefined
}

/** How a tail ended: every byte written, cut off or malformed (the stream failed), or the reader went away. */
export type TailEnd = "written" | "broken" | "cancelled"

/** Reads the next bytes, `size` at most; into `into` when the source reads into caller's buffers (`reusable`). */
type ReadChunk = (size: number, into?: Uint8Array) => Promise<Uint8Array | undefined>

interface ChunkSource {
  readonly read: ReadChunk
  readonly cancel: () => Promise<void>
  /** Reads fill the buffer given (workerd's `readAtLeast`): one buffer can serve every read. */
  readonly reusable: boolean
}

const chunkReader = (body: ReadableStream<Uint8Array>): ChunkSource => {
  let byob: ReadableStreamBYOBReader | undefined
  try {
    byob = body.getReader({ mode: "byob" })
  } catch {
    // Not a byte stream.
  }
  if (byob !== undefined) {
    const reader = byob
    // workerd's `readAtLeast` fills the buffer natively; elsewhere a BYOB read returns what one chunk brought.
    const native = typeof (reader as { readAtLeast?: unknown }).readAtLeast === "function"
    return {
      read: async (size, into) => {
        const buffer = into ?? new Uint8Array(size)
        const result = await (native ? reader.readAtLeast(buffer.byteLength, buffer) : reader.read(buffer))
        const value = result.value as Uint8Array | undefined
        return value === undefined || (result.done && value.byteLength === 0) ? undefined : value
      },
      cancel: () => reader.cancel().catch(() => {}),
      reusable: native
    }
  }
  const reader = body.getReader()
  return {
    read: async () => {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) return undefined
        if (value.byteLength > 0) return value
      }
    },
    cancel: () => reader.cancel().catch(() => {}),
    reusable: false
  }
}

/** The first bytes of a body: up to `size`, fewer only when the body ended. */
const readHead = async (read: ReadChunk, size: number) => {
  const chunks: Array<Uint8Array> = []
  let length = 0
  while (length < size) {
    const chunk = await read(size - length)
    if (chunk === undefined) return { bytes: Buffer.concat(chunks, length), ended: true }
    chunks.push(chunk)
    length += chunk.byteLength
  }
  return { bytes: Buffer.concat(chunks, length), ended: false }
}

export interface TailLimits {
  /** Largest body, in bytes (`UPSTREAM_MAX_BYTES`). */
  readonly maxBytes: number
  /** Time for the rest of the body, counted from the first read of the tail. */
  readonly timeoutMs: number
}

/**
 * What the tail's readers share: each chunk of the body is image up to the value's closing quote; what
 * follows it is kept (it is small) and checked at the end. A string is the reason the answer is refused.
 */
class TailScan {
  #received: number
  #carried = 0
  #trailer: Array<Uint8Array> | undefined
  #trailerBytes = 0
  readonly before: Uint8Array
  readonly maxBytes: number

  constructor(before: Uint8Array, received: number, maxBytes: number) {
    this.before = before
    this.#received = received
    this.maxBytes = maxBytes
  }

  /** The chunk's image bytes (maybe none), or why the answer is refused. `keep`: the chunk's buffer is reused. */
  take(chunk: Uint8Array, keep: boolean): Uint8Array | string {
    this.#received += chunk.byteLength
    if (this.#received > this.maxBytes) {
      return `the upstream's answer is larger than UPSTREAM_MAX_BYTES (${this.maxBytes} bytes)`
    }
    if (this.#trailer !== undefined) {
      this.#trailerBytes += chunk.byteLength
      if (this.#trailerBytes > AFTER_LIMIT) return "the upstream's answer goes on too long after the image"
      this.#trailer.push(keep ? chunk.slice() : chunk)
      return chunk.subarray(0, 0)
    }
    const quote = closingQuote(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), 0, this.#carried)
    if (quote === -1) {
      this.#carried = trailingBackslashes(chunk, this.#carried)
      return chunk
    }
    const rest = chunk.subarray(quote + 1)
    this.#trailer = [keep ? rest.slice() : rest]
    this.#trailerBytes = rest.byteLength
    return chunk.subarray(0, quote)
  }

  /** At the body's end: why the answer is refused, if it is. */
  finish(): string | undefined {
    if (this.#trailer === undefined) return "the upstream's answer broke off inside the image"
    // The body with the value emptied: what comes before it ends with the value's opening quote.
    const skeleton = decoder.decode(Buffer.concat([this.before, QUOTE_NEEDLE, ...this.#trailer]))
    try {
      JSON.parse(skeleton)
      return undefined
    } catch {
      return "the upstream's answer is not valid JSON after the image"
    }
  }
}

interface Deadline {
  readonly expired: () => boolean
  readonly clear: () => void
}

export interface IdentityStream {
  readonly readable: ReadableStream<Uint8Array>
  readonly writable: WritableStream<Uint8Array>
}
/** workerd's native pipe: a write resolves once the reader (the response going out) has taken its bytes. */
const Identity = (globalThis as { IdentityTransformStream?: new () => IdentityStream }).IdentityTransformStream

/** A pipe for a body written as it goes: workerd's native one, or a plain `TransformStream` elsewhere (Node). */
export const makePipe = (): IdentityStream =>
  Identity === undefined ? new TransformStream<Uint8Array, Uint8Array>() : new Identity()

/**
 * Buffers are reused only where a write resolves once the reader has taken its bytes (the native pipe) and a
 * read fills the buffer it is given (`readAtLeast`): both hold in workerd. Elsewhere each read has its own.
 */
const reusesBuffers = (source: ChunkSource) => Identity !== undefined && source.reusable

/**
 * The rest of an image value, still arriving. `frame` gives it as a stream between the caller's own bytes
 * (the answer around the image); it can be taken once. `ended` resolves when the stream has ended, however.
 */
export class ImageTail {
  readonly ended: Promise<TailEnd>
  #end!: (end: TailEnd) => void
  #taken = false
  readonly #scan: TailScan
  readonly #source: ChunkSource
  readonly #timeoutMs: number

  constructor(
    /** The body's bytes up to the value, its opening quote included: checked, with what follows the value, to be valid JSON. */
    before: Uint8Array,
    source: ChunkSource,
    received: number,
    limits: TailLimits
  ) {
    this.#scan = new TailScan(before, received, limits.maxBytes)
    this.#source = source
    this.#timeoutMs = limits.timeoutMs
    this.ended = new Promise((resolve) => {
      this.#end = resolve
    })
  }

  /** Lets the upstream's body go without reading it (an image that will not be written). */
  cancel(): void {
    if (this.#taken) return
    this.#taken = true
    void this.#source.cancel()
    this.#end("cancelled")
  }

  frame(before: ReadonlyArray<Uint8Array>, after: Uint8Array): ReadableStream<Uint8Array> {
    const pipe = makePipe()
    const writer = pipe.writable.getWriter()
    void this.writeTo(writer, before, after).then((end) => (end === "written" ? writer.close() : undefined))
    return pipe.readable
  }

  /**
   * Writes the tail between `before` and `after` into a pipe's writer (`makePipe`), which it leaves open.
   * A tail that goes wrong aborts the writer (the whole body ends broken); a write refused is the reader gone.
   */
  writeTo(writer: WritableStreamDefaultWriter<Uint8Array>, before: ReadonlyArray<Uint8Array>, after: Uint8Array) {
    this.#take()
    return this.#piped(writer, before, after)
  }

  #take(): void {
    if (this.#taken) throw new Error("an image tail is read once")
    this.#taken = true
  }

  /** A deadline for the rest of the body: past it, the read is cancelled and `expired` answers true. */
  #deadline(): Deadline {
    let expired = false
    const timer = setTimeout(() => {
      expired = true
      void this.#source.cancel()
    }, this.#timeoutMs)
    return { expired: () => expired, clear: () => clearTimeout(timer) }
  }

  /**
   * In workerd the body is read into two buffers in turn, each written to the native pipe and reused once the
   * response has taken its bytes, so a tail of any size holds two chunks.
   */
  #piped(
    writer: WritableStreamDefaultWriter<Uint8Array>,
    before: ReadonlyArray<Uint8Array>,
    after: Uint8Array
  ): Promise<TailEnd> {
    const source = this.#source
    const scan = this.#scan
    const deadline = this.#deadline()
    const reuse = reusesBuffers(source)
    const pump = async (): Promise<TailEnd> => {
      for (const part of before) await writer.write(part)
      let next = new Uint8Array(reuse ? CHUNK_BYTES : 0)
      let writing: { readonly done: Promise<void>; readonly buffer: ArrayBuffer } | undefined
      for (;;) {
        let chunk: Uint8Array | undefined
        let broke = false
        try {
          chunk = await source.read(CHUNK_BYTES, reuse ? next : undefined)
        } catch {
          broke = true
        }
        // Every write settles before the pipe is aborted or written again (an abort under a pending write is
        // reported by workerd as an uncaught error); a refused write is the client gone.
        if (writing !== undefined) await writing.done
        if (broke) return refuse("the upstream's answer broke off before its end")
        if (deadline.expired()) return refuse("the upstream's answer did not end in time")
        if (chunk === undefined) {
          const refused = scan.finish()
          if (refused !== undefined) return refuse(refused)
          await writer.write(after)
          return "written"
        }
        const image = scan.take(chunk, reuse)
        if (typeof image === "string") return refuse(image)
        const free = writing?.buffer
        const done = image.byteLength > 0 ? writer.write(image) : Promise.resolve()
        // Awaited on the next turn, or never when the tail is refused first: never an unhandled rejection.
        done.catch(() => {})
        writing = { done, buffer: chunk.buffer as ArrayBuffer }
        // The buffer whose bytes have gone out takes the next read; one a write detached is replaced.
        if (reuse) next = free !== undefined && free.byteLength > 0 ? new Uint8Array(free) : new Uint8Array(CHUNK_BYTES)
      }
    }
    const refuse = async (reason: string): Promise<TailEnd> => {
      void source.cancel()
      // The abort rejects the writer's own promises too; nothing else awaits them.
      writer.ready.catch(() => {})
      writer.closed.catch(() => {})
      await writer.abort(new Error(reason))
      return "broken"
    }
    return (
      pump()
        // A write refused: the response's reader went away (the client left).
        .catch(() => {
          void source.cancel()
          return "cancelled" as const
        })
        .then((end) => {
          deadline.clear()
          this.#end(end)
          return end
        })
    )
  }
}

export type OpenedImage =
  /** The body, whole: it was small, or its image value is not where a stream can find it. Parse it as before. */
  | { readonly _tag: "Whole"; readonly body: Uint8Array }
  | { readonly _tag: "TooLarge" }
  /** The value's first bytes (at least enough to know the format) and the rest, still arriving. */
  | { readonly _tag: "Open"; readonly head: Uint8Array; readonly tail: ImageTail }

/**
 * Reads a JSON body up to where the string value of `key` starts and a little further. A body that does
 * not fit the pattern (the value starts late, or is short) is read whole, up to `limits.maxBytes`.
 */
export const openImageValue = async (
  body: ReadableStream<Uint8Array>,
  key: string,
  limits: TailLimits,
  signal?: AbortSignal
): Promise<OpenedImage> => {
  const source = chunkReader(body)
  signal?.addEventListener("abort", () => void source.cancel(), { once: true })
  const stopped = () => {
    // What a cancelled read holds is not the body: never hand it on as if it were.
    if (signal?.aborted === true) throw new Error("the read was stopped before the body's end")
  }
  const head = await readHead(source.read, HEAD_BYTES)
  stopped()
  const start = head.ended ? undefined : openValueStart(head.bytes, key)
  // An escape where the format is detected (a JSON encoder's `\/`) needs the full decode: read whole.
  if (
    start !== undefined &&
    head.bytes.byteLength - start >= MIN_HEAD &&
    head.bytes.subarray(start, start + 160).indexOf(BACKSLASH) === -1
  ) {
    const tail = new ImageTail(head.bytes.subarray(0, start), source, head.bytes.byteLength, limits)
    return { _tag: "Open", head: head.bytes.subarray(start), tail }
  }
  if (head.ended) return { _tag: "Whole", body: head.bytes }
  // Not a shape to stream: the rest joins the head, bounded like any body.
  const chunks: Array<Uint8Array> = [head.bytes]
  let length = head.bytes.byteLength
  for (;;) {
    const chunk = await source.read(CHUNK_BYTES)
    stopped()
    if (chunk === undefined) return { _tag: "Whole", body: Buffer.concat(chunks, length) }
    length += chunk.byteLength
    if (length > limits.maxBytes) {
      await source.cancel()
      return { _tag: "TooLarge" }
    }
    chunks.push(chunk)
  }
}
