// Fingerprints that decide whether a cached case is up to date: source and settings
// hashes (here, in cache/, so that `cache verify` can recompute them).
import { CACHE_FORMAT_VERSION } from "./format.ts";

/** Hex SHA-256 of bytes or a string. */
export async function sha256Hex(input: Uint8Array | string): Promise<string> {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * JSON with object keys sorted, so that equal settings always hash the same.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
        : v,
  );
}

/**
 * The settings part of a case fingerprint: recipe, storage options and format version.
 * Equal settings hashes and equal source hashes mean the cached case is up to date. A
 * `storage.layout` of `chunked` is left out, so that the cases of caches made before
 * layouts existed (all chunked) keep their fingerprints.
 */
export function settingsHash(settings: { recipe: unknown; storage: unknown }): Promise<string> {
  let storage = settings.storage;
  if (storage && typeof storage === "object" && "layout" in storage) {
    const { layout, ...rest } = storage as Record<string, unknown>;
    if (layout === "chunked") storage = rest;
  }
  return sha256Hex(
    canonicalJson({ format: CACHE_FORMAT_VERSION, settings: { ...settings, storage } }),
  );
}

/** A case fingerprint: the settings hash combined with the source's SHA-256. */
export function caseFingerprint(settings: string, sourceSha256: string): Promise<string> {
  return sha256Hex(`${settings}:${sourceSha256}`);
}
