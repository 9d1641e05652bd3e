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
}
