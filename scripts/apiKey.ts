import { createHash, randomBytes } from "node:crypto"

/** A new gateway key: `sk-gw-` and 256 random bits in base64url (the OpenAI SDKs take any string). */
export const newApiKey = (): string => `sk-gw-${randomBytes(32).toString("base64url")}`

/** The SHA-256 of a key in hex: what an operator may store instead of the key itself. */
export const sha256Hex = (key: string): string => createHash("sha256").update(key).digest("hex")
