// The module scope's evaluation in a fresh Node process, by whose modules it runs: the gateway's own (`src/`: its
// schemas, errors, the HttpApi contract, the catalogue, with the Effect functions they call first, which V8
// compiles then) or Effect's own module scope. The bundle is `bundleMarkedForNode`'s. Prints one JSON line (CPU ms).
// Run by `BENCH_ONLY=startup`.
// Node's own start-up first, as in startup-probe.mjs: its module loader and its fetch classes.
await import("data:text/javascript,export default 1")
await new Response(new Request("http://warm.test/", { method: "POST", body: "{}", headers: { a: "b" } }).body).arrayBuffer()
await import(new URL(`file://${process.argv[2]}`).href)
const marks = globalThis.__moduleMarks
// Everything bundled besides src/ is Effect (the entry itself only re-exports).
const totals = { ownMs: 0, effectMs: 0 }
for (let i = 0; i + 1 < marks.length; i++) {
  const [module, at] = marks[i]
  const ms = marks[i + 1][1] - at
  if (module.startsWith("src/")) totals.ownMs += ms
  else totals.effectMs += ms
}
console.log(JSON.stringify(totals))
