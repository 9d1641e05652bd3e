import { createHash } from "node:crypto"
import { decode } from "fast-png"
import { describe, expect, it } from "vitest"
import { parseSize } from "../../src/domain/ImageSize.ts"
import { renderPreview } from "../../src/services/upstreams/LocalUpstream.ts"

describe("local/preview renderer", () => {
  it("renders a decodable PNG at the requested size, scaled down past 1024", async () => {
    const small = decode(await renderPreview("a fox", parseSize("300x200")))
    expect([small.width, small.height, small.channels]).toEqual([300, 200, 3])
    const big = decode(await renderPreview("a fox", parseSize("1792x1024")))
    expect([big.width, big.height]).toEqual([1024, 585])
    const auto = decode(await renderPreview("a fox", parseSize("auto")))
    expect([auto.width, auto.height]).toEqual([512, 512])
  })

  it("is deterministic per prompt and size, and different across prompts", async () => {
    const a = await renderPreview("a fox", parseSize("128x128"))
    expect(await renderPreview("a fox", parseSize("128x128"))).toEqual(a)
    const b = await renderPreview("a whale", parseSize("128x128"))
    expect(b).not.toEqual(a)
    // visibly different: mean colours differ noticeably
    const mean = (png: Uint8Array) => {
      const { data } = decode(png)
      let sum = 0
      for (const value of data) sum += value
      return sum / data.length
    }
    const pixelsA = decode(a).data
    const pixelsB = decode(b).data
    let differing = 0
    for (let i = 0; i < pixelsA.length; i++) if (Math.abs((pixelsA[i] ?? 0) - (pixelsB[i] ?? 0)) > 16) differing++
    expect(differing / pixelsA.length).toBeGreaterThan(0.3)
    expect(Number.isFinite(mean(a))).toBe(true)
  })

  it("draws each image of a request differently, the first as a request of one image does", async () => {
    const size = parseSize("96x64")
    const [first, second, third] = await Promise.all([0, 1, 2].map((index) => renderPreview("a fox", size, index)))
    expect(first).toEqual(await renderPreview("a fox", size))
    expect(second).not.toEqual(first)
    expect(third).not.toEqual(second)
    expect(await renderPreview("a fox", size, 2)).toEqual(third)
  })

  it("paints the same bytes as it always has: a change to the picture has to be deliberate", async () => {
    // The cache, the tests and the README's screenshots rely on local/preview being a pure function of its request.
    const sha256 = async (index: number, size: string) =>
      createHash("sha256")
        .update(await renderPreview("a lighthouse at dusk", parseSize(size), index))
        .digest("hex")
    expect(await sha256(0, "96x64")).toBe("eabdbec0b6bca2d40bd0b7d335d8e4e0e677d0c01854b6e908093fe31b72718c")
    expect(await sha256(3, "64x96")).toBe("4d7523ef7654f4196a921e11694c3fe25bb868b7d11f072d34d75b86fff63793")
  })
})
