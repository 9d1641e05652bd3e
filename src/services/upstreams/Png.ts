import { UpstreamRejected } from "../../domain/Errors.ts"

/**
 * PNG for the offline model: written (8-bit RGB) and read (8 or 16 bits, any colour type, not interlaced).
 * The compression, the only hard part, is the platform's zlib (`CompressionStream` and `DecompressionStream`,
 * in workerd and Node alike); what is here is PNG's framing: chunks, CRCs and the row filters.
 */

/** Largest picture decoded, in pixels. */
const MAX_PIXELS = 4096 * 4096

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

/** Pixels as 8-bit RGBA, row by row. */
export interface Rgba {
  readonly width: number
  readonly height: number
  readonly data: Uint8Array
}

const refused = (detail: string) => new UpstreamRejected({ status: 400, detail, param: "image" })

const inflate = async (bytes: Uint8Array) =>
  new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"))).arrayBuffer())

const paeth = (a: number, b: number, c: number) => {
  const p = a + b - c
  const pa = Math.abs(p - a)
  const pb = Math.abs(p - b)
  const pc = Math.abs(p - c)
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
}

/** Samples per pixel of each PNG colour type: grey, RGB, palette, grey + alpha, RGBA. */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }

/**
 * A non-interlaced PNG of 8 or 16 bits per sample (any colour type; palettes of 8 bits) as RGBA.
 * The inflating is the platform's zlib (`DecompressionStream`); the rest is PNG's own framing and filters.
 */
export const decodePng = async (png: Uint8Array): Promise<Rgba | UpstreamRejected> => {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength)
  let width = 0
  let height = 0
  let depth = 0
  let type = -1
  let palette: Uint8Array = new Uint8Array()
  const idat: Array<Uint8Array> = []
  for (let at = 8; at + 8 <= png.byteLength; ) {
    const length = view.getUint32(at)
    const name = String.fromCharCode(...png.subarray(at + 4, at + 8))
    const data = png.subarray(at + 8, at + 8 + length)
    if (name === "IHDR") {
      width = view.getUint32(at + 8)
      height = view.getUint32(at + 12)
      depth = data[8] ?? 0
      type = data[9] ?? -1
      if (data[12] !== 0) return refused("local/preview edits non-interlaced PNG images only")
    } else if (name === "PLTE") palette = data
    else if (name === "IDAT") idat.push(data)
    else if (name === "IEND") break
    at += 12 + length
  }
  const channels = CHANNELS[type]
  if (channels === undefined || width === 0 || height === 0 || !(depth === 8 || (depth === 16 && type !== 3))) {
    return refused("local/preview edits PNG images of 8 or 16 bits per sample only")
  }
  if (width * height > MAX_PIXELS) return refused("local/preview edits images of at most 4096 x 4096 pixels")
  let raw: Uint8Array
  try {
    raw = await inflate(new Uint8Array(await new Blob(idat).arrayBuffer()))
  } catch {
    return refused("the PNG's image data is not valid")
  }
  const bytesPerPixel = (channels * depth) / 8
  const stride = width * bytesPerPixel
  if (raw.byteLength < height * (stride + 1)) return refused("the PNG's image data is shorter than its size")
  const rows = new Uint8Array(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1))
    const out = rows.subarray(y * stride, (y + 1) * stride)
    const up = y === 0 ? undefined : rows.subarray((y - 1) * stride, y * stride)
    for (let i = 0; i < stride; i++) {
      const a = i >= bytesPerPixel ? out[i - bytesPerPixel]! : 0
      const b = up?.[i] ?? 0
      const c = up !== undefined && i >= bytesPerPixel ? up[i - bytesPerPixel]! : 0
      const x = line[i]!
      out[i] =
        filter === 1 ? x + a : filter === 2 ? x + b : filter === 3 ? x + ((a + b) >> 1) : filter === 4 ? x + paeth(a, b, c) : x
    }
  }
  const data = new Uint8Array(width * height * 4)
  const step = depth / 8
  for (let p = 0; p < width * height; p++) {
    const sample = (k: number) => rows[p * bytesPerPixel + k * step]!
    const o = p * 4
    if (type === 3) {
      const index = sample(0) * 3
      data.set([palette[index] ?? 0, palette[index + 1] ?? 0, palette[index + 2] ?? 0, 255], o)
    } else if (channels <= 2) {
      data.set([sample(0), sample(0), sample(0), channels === 2 ? sample(1) : 255], o)
    } else data.set([sample(0), sample(1), sample(2), channels === 4 ? sample(3) : 255], o)
  }
  return { width, height, data }
}
