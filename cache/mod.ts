/**
 * The Zarr v3 cache: layout, codecs, quantised storage, writing and reading cases, and
 * the storage commands a script needs (listing with sizes, totals, verifying, removing,
 * consolidating, previews). Reading works on a folder or a URL (`http(s)://`, `s3://`).
 *
 * @example Verify a cache served over HTTP, then list its sizes
 * ```ts ignore
 * const report = await verifyCache("http://127.0.0.1:8000/");
 * const broken = report.checks.filter((c) => c.problems.length);
 * const totals = datasetStats(await listCaseInfo("http://127.0.0.1:8000/"));
 * console.log(broken.length, totals.map((t) => [t.dataset, t.cases, t.bytes]));
 * ```
 *
 * @module
 */
export {
  CACHE_FORMAT_VERSION,
  type Compressor,
  COMPRESSORS,
  DEFAULT_CHUNK,
  DEFAULT_COMPRESSOR,
  isValidNodeName,
  STAGING_DIR,
  toNodeName,
} from "./format.ts";
export { type BloscConfig, NativeBloscCodec, registerNativeBlosc } from "./blosc_codec.ts";
export { NativeZstdCodec, registerNativeZstd, type ZstdConfig } from "./zstd_codec.ts";
export { registerCodecs } from "./codecs.ts";
export {
  dequantize,
  quantize,
  rawBytes,
  type StorageDtype,
  type StorageEncoding,
  storageEncoding,
  type StorageEncodingOptions,
} from "./quantize.ts";
export { chunkCodecs, type WritableStore, writeCase, type WriteCaseOptions } from "./write_case.ts";
export {
  type CaseAttributes,
  type OpenCase,
  openCase,
  type ReadableStore,
  readCase,
  readCaseAttributes,
} from "./read_case.ts";
export {
  cachedFingerprint,
  type CacheEntry,
  cleanStaging,
  createStagingRun,
  ensureDataset,
  initCache,
  listCases,
  publishCase,
  STAGING_STALE_MS,
  type StagingRun,
} from "./cache_dir.ts";
export {
  type CacheCaseInfo,
  type CacheLocationKind,
  CacheReader,
  type CacheReaderOptions,
  isCacheUrl,
  type StoredObject,
} from "./reader.ts";
export {
  type CaseInfo,
  type DatasetStats,
  datasetStats,
  listCaseInfo,
  type ListCaseInfoOptions,
  PICKLE_OVERHEAD,
} from "./stats.ts";
export {
  type CaseCheck,
  verifyCache,
  verifyCase,
  type VerifyCaseOptions,
  type VerifyOptions,
  type VerifyReport,
} from "./verify.ts";
export { consolidate, refreshConsolidated } from "./consolidate.ts";
export { removeFromCache } from "./remove.ts";
export { type PreviewOptions, renderPreview } from "./preview.ts";
export { crc32c } from "./crc32c.ts";
export { FetchError, type FetchStats } from "./_http_store.ts";
export type { S3Options } from "./_s3.ts";
export { cacheHandler, type CacheServer, serveCache, type ServeCacheOptions } from "./serve.ts";
