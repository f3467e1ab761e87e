// Fingerprints that decide whether a cached case is up to date; they live in cache/ (so
// that `cache verify` recomputes them) and are re-exported here for prep.
export {
  canonicalJson,
  caseFingerprint,
  settingsHash,
  sha256Hex,
} from "../../cache/fingerprint.ts";
