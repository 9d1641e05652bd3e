import { readFileSync, writeFileSync } from "node:fs"
import type { LocalWorker } from "../test/support/wranglerDev.ts"

/**
 * Peak memory growth of the Worker's process per request, as a multiple of the answer's size (issue 17):
 * the peak resident set of every workerd process below the Worker is reset (`/proc/<pid>/clear_refs`, 5)
 * before the request(s) and read back (VmHWM) after, less what was resident before. Linux only.
 */

/** 3 MB of base64 per image: 2.25 MiB of bytes. */
export const MEMORY_IMAGE_BYTES = 3 * 1024 * 1024 * 0.75

const descendants = (pid: number): Array<number> => {
  const found: Array<number> = []
  const visit = (id: number) => {
    try {
      const stat = readFileSync(`/proc/${id}/stat`, "utf8")
      if (stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")).startsWith("workerd")) found.push(id)
      for (const child of readFileSync(`/proc/${id}/task/${id}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) {
        visit(Number(child))
      }
    } catch {
      // process ended
    }
  }
  visit(pid)
  return found
}

const statusBytes = (pid: number, field: "VmRSS" | "VmHWM") => {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return Number(match?.[1] ?? 0) * 1024
}

/** Resident memory now, in bytes, of every workerd process below `pid` (a `wrangler dev`). */
export const workerdResidentBytes = (pid: number) =>
  descendants(pid).reduce((sum, id) => {
    try {
      return sum + statusBytes(id, "VmRSS")
    } catch {
      return sum // the process ended
    }
  }, 0)

/** Runs `send` (which returns the bytes it received) and gives the peak growth of the Worker's processes. */
const peakGrowth = async (worker: LocalWorker, send: () => Promise<number>) => {
  const pids = descendants(worker.child.pid ?? 0)
  for (const pid of pids) writeFileSync(`/proc/${pid}/clear_refs`, "5")
  const before = pids.reduce((sum, pid) => sum + statusBytes(pid, "VmRSS"), 0)
  const bytes = await send()
  const peak = pids.reduce((sum, pid) => sum + statusBytes(pid, "VmHWM"), 0)
  return { growth: Math.max(0, peak - before), bytes }
}

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0

export interface MemoryFigure {
  readonly name: string
  /** Median peak growth, bytes. */
  readonly growth: number
  /** The answers' total size, bytes. */
  readonly answerBytes: number
  readonly ratio: number
  readonly samples: ReadonlyArray<number>
}

/**
 * `parallel` requests at once, each sample on a fresh Worker: started, its code paths warmed with small
 * images (so compilation is not counted), then measured once with `imageBytes` images (3 MB of base64 unless
 * told). A Worker that has served big answers before keeps the heap they grew, and would hide what the next one needs.
 */
export const measureMemory = async (
  name: string,
  start: () => Promise<LocalWorker>,
  request: (worker: LocalWorker, imageBytes: number) => Request,
  parallel: number,
  imageBytes = MEMORY_IMAGE_BYTES,
  repeats = 3
): Promise<MemoryFigure> => {
  const send = (worker: LocalWorker, imageBytes: number) => async () => {
    const sizes = await Promise.all(
      Array.from({ length: parallel }, async () => {
        const response = await fetch(request(worker, imageBytes))
        const body = await response.arrayBuffer()
        if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`)
        return body.byteLength
      })
    )
    return sizes.reduce((sum, size) => sum + size, 0)
  }
  const samples: Array<{ growth: number; bytes: number }> = []
  for (let i = 0; i < repeats; i++) {
    const worker = await start()
    try {
      for (let warm = 0; warm < 3; warm++) await send(worker, 4096)()
      samples.push(await peakGrowth(worker, send(worker, imageBytes)))
    } finally {
      worker.stop()
    }
  }
  const growth = median(samples.map((sample) => sample.growth))
  const answerBytes = median(samples.map((sample) => sample.bytes))
  return { name, growth, answerBytes, ratio: growth / answerBytes, samples: samples.map((sample) => sample.growth) }
}
