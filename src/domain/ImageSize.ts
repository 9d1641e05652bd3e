/** A requested output size. `auto` leaves the choice to the model. */
export type ImageSize = { readonly _tag: "Auto" } | { readonly _tag: "Exact"; readonly width: number; readonly height: number }

export const SIZE_PATTERN = /^(\d{1,5})x(\d{1,5})$/

export const parseSize = (size: string | null | undefined): ImageSize => {
  const match = size == null || size === "auto" ? null : SIZE_PATTERN.exec(size)
  if (match === null) return { _tag: "Auto" }
  return { _tag: "Exact", width: Number(match[1]), height: Number(match[2]) }
}

export const formatSize = (size: ImageSize): string => (size._tag === "Auto" ? "auto" : `${size.width}x${size.height}`)

const ratioValue = (ratio: string): number => {
  const [w, h] = ratio.split(":").map(Number)
  return (w ?? 1) / (h ?? 1)
}

/**
 * Picks the supported aspect ratio closest to the requested size. Distance is
 * measured on a log scale so that 2:1 and 1:2 are equally far from 1:1.
 * Returns undefined for `auto`, meaning "the model default".
 */
export const nearestAspectRatio = (size: ImageSize, supported: ReadonlyArray<string>): string | undefined => {
  if (size._tag === "Auto" || supported.length === 0) return undefined
  const wanted = Math.log(size.width / size.height)
  let best = supported[0]
  let bestDistance = Number.POSITIVE_INFINITY
  for (const ratio of supported) {
    const distance = Math.abs(Math.log(ratioValue(ratio)) - wanted)
    if (distance < bestDistance) {
      best = ratio
      bestDistance = distance
    }
  }
  return best
}
