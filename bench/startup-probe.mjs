// One cold start in a fresh Node process: CPU to evaluate the bundle's module scope, to build the handler (the
// layers), and to answer the first request. Prints one JSON line. Run by `BENCH_ONLY=startup`.
const cpuMs = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}
const bundle = process.argv[2]
// Node's own start-up, paid here on nothing of the bundle's: its module loader (the first dynamic import) and
// its fetch classes (undici, loaded on first use), which workerd has built in.
await import("data:text/javascript,export default 1")
await new Response(new Request("http://warm.test/", { method: "POST", body: "{}", headers: { a: "b" } }).body).arrayBuffer()
const t0 = cpuMs()
const { ConfigProvider, makeHandler } = await import(new URL(`file://${bundle}`).href)
const t1 = cpuMs()
const app = makeHandler(
  ConfigProvider.fromUnknown({ API_KEYS: "k", ENVIRONMENT: "production", ENABLE_LOCAL_MODEL: "true", LOG_LEVEL: "Warn" }),
  {}
)
const t2 = cpuMs()
const first = await app.handler(new Request("http://gateway.test/health"))
await first.arrayBuffer()
const t3 = cpuMs()
const second = await app.handler(new Request("http://gateway.test/health"))
await second.arrayBuffer()
const t4 = cpuMs()
console.log(JSON.stringify({ moduleMs: t1 - t0, buildMs: t2 - t1, firstRequestMs: t3 - t2, warmRequestMs: t4 - t3 }))
await app.dispose()
