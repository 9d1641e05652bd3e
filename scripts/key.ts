/**
 * `npm run key`: prints a new random API key and its SHA-256. The key goes into the API_KEYS secret
 * (`npx wrangler secret put API_KEYS`, several keys comma-separated); the hash is for configurations that
 * store only a key's hash. Nothing is stored or sent anywhere by this script.
 */
import { newApiKey, sha256Hex } from "./apiKey.ts"

const key = newApiKey()
console.log(`key     ${key}`)
console.log(`sha256  ${sha256Hex(key)}`)
console.log("\nAdd it to the deployed gateway: npx wrangler secret put API_KEYS (comma-separate several keys).")
