import { describe, expect, it } from "vitest"
import { parseRange, r2Range, rangeOf } from "../../src/http/HostedImagesHttp.ts"

/** Byte ranges of hosted images: what a Range header asks for, what R2 is asked for, and the Content-Range sent. */

describe("parseRange", () => {
  it("reads one range of the three forms", () => {
    expect(parseRange("bytes=0-9")).toEqual({ start: 0, end: 9 })
    expect(parseRange("bytes=5-5")).toEqual({ start: 5, end: 5 })
    expect(parseRange("bytes=7-")).toEqual({ start: 7 })
    expect(parseRange("bytes=-5")).toEqual({ suffix: 5 })
  })

  it("ignores what it cannot serve as one range, so the whole image is answered", () => {
    for (const header of [
      undefined,
      "bytes=-",
      "bytes=-0",
      "bytes=5-2",
      "bytes=abc",
      "bytes=0-1,4-5",
      "items=0-9",
      "x bytes=0-9",
      "bytes=0-9 x"
    ])
      expect(parseRange(header), String(header)).toBeUndefined()
  })
})

describe("r2Range", () => {
  it("clamps to the image and refuses a start past its end", () => {
    expect(r2Range({ suffix: 50 }, 20)).toEqual({ suffix: 20 })
    expect(r2Range({ suffix: 5 }, 20)).toEqual({ suffix: 5 })
    expect(r2Range({ start: 5, end: 9 }, 20)).toEqual({ offset: 5, length: 5 })
    expect(r2Range({ start: 5, end: 100 }, 20)).toEqual({ offset: 5, length: 15 })
    expect(r2Range({ start: 5 }, 20)).toEqual({ offset: 5, length: 15 })
    expect(r2Range({ start: 19 }, 20)).toEqual({ offset: 19, length: 1 })
    expect(r2Range({ start: 20 }, 20)).toBe("unsatisfiable")
  })
})

describe("rangeOf", () => {
  it("gives the first and last byte R2 served, for each form it answers with", () => {
    expect(rangeOf({ suffix: 5 }, 20)).toEqual({ start: 15, end: 19 })
    expect(rangeOf({ suffix: 50 }, 20)).toEqual({ start: 0, end: 19 })
    expect(rangeOf({ offset: 3, length: 4 }, 20)).toEqual({ start: 3, end: 6 })
    expect(rangeOf({ offset: 3 }, 20)).toEqual({ start: 3, end: 19 })
    expect(rangeOf({ length: 4 }, 20)).toEqual({ start: 0, end: 3 })
    expect(rangeOf({ offset: 18, length: 10 }, 20)).toEqual({ start: 18, end: 19 })
  })
})
