/**
 * `BENCH_ONLY=js`: the JavaScript of the gateway's `n: 1` `b64_json` request beside the floor's, in V8 under Node
 * (`bench/js-probe.mjs`), alternating fresh processes. It leaves out what the workerd figures hold besides the two
 * programs' own JavaScript (the runtime's streams and sockets, the fake upstream, the load generator), so it shows
 * the gateway's own share with less noise; it is not what Cloudflare bills, which the CPU rounds measure.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"

export interface JsFigures {
  readonly gatewayCpuMs: ReadonlyArray<number>
  readonly floorCpuMs: ReadonlyArray<number>
}

/** An entry bundled and minified for V8 under Node, as the startup probe and the JavaScript probe load it. */
export const bundleForNode = (entry: string, outfile: string) =>
  execFileSync(
    "npx",
    ["esbuild", entry, "--bundle", "--format=esm", "--platform=node", "--minify", `--outfile=${outfile}`, "--log-level=warning"],
    { stdio: "inherit" }
  )

/**
 * The same entry unminified, with a mark before each bundled module's top-level code (esbuild heads each with a
 * `// <path>` comment): `bench/module-probe.mjs` reads the CPU each module's evaluation took from the marks.
 */
export const bundleMarkedForNode = (entry: string, outfile: string) => {
  const code = execFileSync("npx", ["esbuild", entry, "--bundle", "--format=esm", "--platform=node", "--log-level=warning"], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024
  })
  const marked = code
    .split("\n")
    .map((line) => {
      const module = /^\/\/ (\S+\.[cm]?[jt]s)$/.exec(line)?.[1]
      if (module !== undefined) return `__mark(${JSON.stringify(module)});\n${line}`
      return line.startsWith("export {") ? `__mark("");\n${line}` : line
    })
    .join("\n")
  const prelude =
    "const __marks = (globalThis.__moduleMarks = []);\n" +
    "const __mark = (module) => { const { user, system } = process.cpuUsage(); __marks.push([module, (user + system) / 1000]) };\n"
  writeFileSync(outfile, prelude + marked)
}

/** Runs one of the bench's Node probes in a fresh process and reads the JSON line it prints last. */
export const runProbe = <A>(script: string, args: ReadonlyArray<string>): A =>
  JSON.parse(
    execFileSync(process.execPath, [join(import.meta.dirname, script), ...args], { encoding: "utf8" })
      .trim()
      .split("\n")
      .at(-1) ?? "{}"
  ) as A

export const jsFigures = (dir: string, rounds: number, requests: number): JsFigures => {
  mkdirSync(dir, { recursive: true })
  const gateway = join(dir, "gateway.mjs")
  const floor = join(dir, "floor.mjs")
  bundleForNode(join(import.meta.dirname, "startup-entry.ts"), gateway)
  bundleForNode(join(import.meta.dirname, "httpapi-floor", "floor.ts"), floor)
  const probe = (which: string, file: string) =>
    runProbe<{ cpuMsPerRequest: number }>("js-probe.mjs", [which, file, String(requests)]).cpuMsPerRequest
  const gatewayCpuMs: Array<number> = []
  const floorCpuMs: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    floorCpuMs.push(probe("floor", floor))
    gatewayCpuMs.push(probe("gateway", gateway))
  }
  return { gatewayCpuMs, floorCpuMs }
}
