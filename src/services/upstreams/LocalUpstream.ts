import { Effect } from "effect"
import { UpstreamMalformed } from "../../domain/Errors.ts"
import type { GeneratedImage } from "../../domain/ImageFormat.ts"
import type { ImageSize } from "../../domain/ImageSize.ts"
import type { UpstreamJob } from "../../domain/Upstream.ts"
import type { UpstreamKind } from "./ImageUpstream.ts"
import { imageFromBytes } from "./UpstreamCalls.ts"

/** Longest side the offline model renders; larger requests keep their aspect ratio at this size. */
export const LOCAL_MAX_SIDE = 1024
export const LOCAL_DEFAULT_SIDE = 512

/** CRC-32 (ISO 3309), as PNG chunks need it. */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
const crc32 = (bytes: Uint8Array) => {
  let c = 0xffffffff
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const chunk = (type: string, data: Uint8Array) => {
  const out = new Uint8Array(12 + data.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, data.length)
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i)
  out.set(data, 8)
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)))
  return out
}

/**
 * An 8-bit RGB PNG. The compression, the only hard part, is the platform's
 * zlib (`CompressionStream("deflate")`, in workerd and Node alike); what is
 * written here is the PNG framing: signature, IHDR, IDAT, IEND, each with its CRC.
 */
export const encodePng = async (width: number, height: number, rgb: Uint8Array): Promise<Uint8Array> => {
  const rows = new Uint8Array(height * (width * 3 + 1))
  for (let y = 0; y < height; y++) rows.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1)
  const zlib = new Uint8Array(
    await new Response(new Blob([rows]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer()
  )
  const header = new Uint8Array(13)
  const view = new DataView(header.buffer)
  view.setUint32(0, width)
  view.setUint32(4, height)
  header.set([8, 2, 0, 0, 0], 8) // depth 8, colour type RGB, deflate, adaptive filtering, no interlace
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", zlib),
    chunk("IEND", new Uint8Array())
  ]
  const png = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0))
  let offset = 0
  for (const part of parts) {
    png.set(part, offset)
    offset += part.length
  }
  return png
}

/** FNV-1a: a stable 32-bit seed from the prompt and size. */
const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** mulberry32: small deterministic PRNG, so the same prompt always paints the same picture. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

export const previewDimensions = (size: ImageSize): { width: number; height: number } => {
  if (size._tag === "Auto") return { width: LOCAL_DEFAULT_SIDE, height: LOCAL_DEFAULT_SIDE }
  const scale = Math.min(1, LOCAL_MAX_SIDE / Math.max(size.width, size.height))
  return {
    width: Math.max(1, Math.round(size.width * scale)),
    height: Math.max(1, Math.round(size.height * scale))
  }
}

/**
 * Paints an abstract picture: a two-colour diagonal gradient with soft discs,
 * every colour and position drawn from the hash of the prompt, the size and the
 * image's index in its request. Different prompts, and the images of one request,
 * are visibly different; the same request gives identical bytes.
 */
export const renderPreview = (prompt: string, size: ImageSize, index = 0): Promise<Uint8Array> => {
  const { width, height } = previewDimensions(size)
  // The first image keeps the seed it had before images were told apart, so its picture did not change.
  const random = prng(hash(`${prompt}\u0000${width}x${height}${index === 0 ? "" : `\u0000${index}`}`))
  const colour = () => [random() * 255, random() * 255, random() * 255] as const
  const from = colour()
  const to = colour()
  const discs = Array.from({ length: 3 + Math.floor(random() * 5) }, () => ({
    x: random() * width,
    y: random() * height,
    r: (0.1 + random() * 0.3) * Math.min(width, height),
    rgb: colour()
  }))
  const pixels = new Uint8Array(width * height * 3)
  const diagonal = width + height
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x + y) / diagonal
      let r = from[0] + (to[0] - from[0]) * t
      let g = from[1] + (to[1] - from[1]) * t
      let b = from[2] + (to[2] - from[2]) * t
      for (const disc of discs) {
        const dx = x - disc.x
        const dy = y - disc.y
        const d2 = dx * dx + dy * dy
        const r2 = disc.r * disc.r
        if (d2 < r2) {
          const alpha = 0.75 * (1 - d2 / r2)
          r += (disc.rgb[0] - r) * alpha
          g += (disc.rgb[1] - g) * alpha
          b += (disc.rgb[2] - b) * alpha
        }
      }
      const i = (y * width + x) * 3
      pixels[i] = r
      pixels[i + 1] = g
      pixels[i + 2] = b
    }
  }
  return encodePng(width, height, pixels)
}

/**
 * Kind `local`: the offline model `local/preview`, rendered in the Worker with no network. The
 * built-in instance `local` exists where the offline model is enabled. One image per call.
 */
export const LocalKind: UpstreamKind = {
  kind: "local",
  baseUrl: "none",
  make: (instance) =>
    Effect.succeed({
      instance,
      bind: () => (job: UpstreamJob) =>
        Effect.promise(() => renderPreview(job.prompt, job.size, job.firstImage ?? 0)).pipe(
          Effect.map((png): ReadonlyArray<GeneratedImage> => {
            const image = imageFromBytes(png)
            // The renderer writes PNG: only a bug could make this fail.
            if (image instanceof UpstreamMalformed) throw new Error("local/preview rendered an unknown format")
            return [{ ...image, attempts: 1, upstream: instance.id }]
          })
        )
    })
}
