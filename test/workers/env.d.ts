// The Worker under test, as `exports.default` from `cloudflare:workers` (see vitest-plugin).
declare namespace Cloudflare {
  interface Exports {
    default: Fetcher
  }
}
