import { Buffer } from "node:buffer"
import type { ImageTail } from "./ImageTail.ts"

/** Image formats the gateway can detect from the first bytes of an image. */
export type ImageFormat = "png" | "jpeg" | "webp"

export const mimeTypeOf = (format: ImageFormat): string => `image/${format}`

const startsWith = (bytes: Uint8Array, prefix: ReadonlyArray<number>, offset = 0) =>
  bytes.length >= offset + prefix.length && prefix.every((byte, i) => bytes[offset + i] === byte)

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
const JPEG = [0xff, 0xd8, 0xff]
const RIFF = [0x52, 0x49, 0x46, 0x46]
const WEBP = [0x57, 0x45, 0x42, 0x50]

/** Detects the format from magic bytes; the upstream may send any of the three, so PNG is never assumed. */
export const detectImageFormat = (bytes: Uint8Array): ImageFormat | undefined => {
  if (startsWith(bytes, PNG)) return "png"
  if (startsWith(bytes, JPEG)) return "jpeg"
  if (startsWith(bytes, RIFF) && startsWith(bytes, WEBP, 8)) return "webp"
  return undefined
}

/**
 * Decodes only the first 12 bytes (16 base64 characters): enough for the magic
 * numbers, cheap for 1 MiB images. Takes the base64 text or its ASCII bytes.
 */
export const detectBase64ImageFormat = (base64: string | Uint8Array): ImageFormat | undefined => {
  try {
    const text = typeof base64 === "string" ? base64.slice(0, 16) : String.fromCharCode(...base64.subarray(0, 16))
    const head = atob(text)
    const bytes = new Uint8Array(head.length)
    for (let i = 0; i < head.length; i++) bytes[i] = head.charCodeAt(i)
    return detectImageFormat(bytes)
  } catch {
    return undefined
  }
}

/**
 * One image produced by any upstream. The image stays base64, as both the
 * upstream and the response carry it, and as ASCII bytes rather than a string:
 * a 1 MiB image is then copied to the answer, never decoded or re-escaped.
 * The bytes are the content of a JSON string, ready to be copied into one (see `JsonBytes.ts`).
 */
export interface GeneratedImage {
  readonly base64: Uint8Array
  readonly format: ImageFormat
  /** Upstream attempts it took, retries included. */
  readonly attempts: number
  /** The upstream instance that made it (absent for images read back from the cache). */
  readonly upstream?: string | undefined
  /** How many fallback steps it took: 0 when the requested model made it. */
  readonly failovers?: number | undefined
  /**
   * The rest of the image, still arriving: `base64` is then only its first bytes. Only for a job that asked
   * for it (`UpstreamJob.incremental`); whoever takes the image writes the tail, or cancels it.
   */
  readonly tail?: ImageTail | undefined
}

/**
 * Whether the bytes are base64 text and nothing else (the alphabet, then `=` padding). Checked natively: a
 * decode skips whatever is not base64 (a newline, a quote, a backslash, a parenthesis), so a result shorter
 * than the text's length promises means something else is in it. About half a millisecond for a 1 MiB
 * image in V8, so it runs where the bytes are written into text a client reads further (SSE lines, chat
 * markdown), not on the plain `b64_json` answer, where they stay inside a JSON string (see the README).
 */
export const isBase64Text = (bytes: Uint8Array): boolean => {
  const length = bytes.byteLength
  if (length === 0) return false
  // No base64 text is one past a multiple of four long; with that excluded, one skipped byte or more
  // always makes the decoded length fall short of the length the text promises.
  if ((length - paddingOf(bytes)) % 4 === 1) return false
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, length).toString("latin1")
  return Buffer.from(text, "base64").byteLength === decodedLength(bytes)
}

const paddingOf = (bytes: Uint8Array) => {
  const length = bytes.byteLength
  return bytes[length - 1] === 0x3d ? (bytes[length - 2] === 0x3d ? 2 : 1) : 0
}

/** How many bytes base64 text decodes to: three per four characters, less what its `=` padding stands for. */
export const decodedLength = (bytes: Uint8Array): number => Math.floor(((bytes.byteLength - paddingOf(bytes)) * 3) / 4)
