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
  BadInputError,
  DamagedCacheError,
  type ErrorKind,
  errorKind,
  NotACacheError,
  UnavailableError,
  UsageError,
  VocoError,
  type VocoErrorOptions,
} from "./errors.ts";
export {
  CACHE_FORMAT_VERSION,
  type Compressor,
  COMPRESSORS,
  DEFAULT_CHUNK,
  DEFAULT_COMPRESSOR,
  isValidNodeName,
  STAGING_DIR,
  toNodeName,
} from "./format/format.ts";
export { type BloscConfig, NativeBloscCodec, registerNativeBlosc } from "./codecs/blosc.ts";
export { NativeZstdCodec, registerNativeZstd, type ZstdConfig } from "./codecs/zstd.ts";
export { registerCodecs } from "./codecs/register.ts";
export {
  dequantize,
  quantize,
  rawBytes,
  type StorageDtype,
  type StorageEncoding,
  storageEncoding,
  type StorageEncodingOptions,
} from "./format/quantize.ts";
export {
  chunkCodecs,
  type WritableStore,
  writeCase,
  type WriteCaseOptions,
} from "./write/write_case.ts";
export {
  type CaseAttributes,
  type OpenCase,
  openCase,
  type ReadableStore,
  readCase,
  readCaseAttributes,
  type ReadCropOptions,
} from "./read/read_case.ts";
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
} from "./write/cache_dir.ts";
export {
  type CacheCaseInfo,
  type CacheLocationKind,
  CacheReader,
  type CacheReaderOptions,
  isCacheUrl,
  type StoredObject,
} from "./read/cache_reader.ts";
export {
  type CaseInfo,
  type DatasetStats,
  datasetStats,
  listCaseInfo,
  type ListCaseInfoOptions,
  PICKLE_OVERHEAD,
} from "./inspect/stats.ts";
export {
  type CaseCheck,
  verifyCache,
  verifyCase,
  type VerifyCaseOptions,
  type VerifyOptions,
  type VerifyReport,
} from "./inspect/verify.ts";
export { consolidate, ensureConsolidated, refreshConsolidated } from "./write/consolidate.ts";
export { removeFromCache } from "./write/remove.ts";
export { type BrokenNode, repairCache } from "./write/repair.ts";
export {
  previewCache,
  type PreviewCacheOptions,
  type PreviewOptions,
  renderPreview,
} from "./inspect/preview.ts";
export {
  type CacheListing,
  type CaseDetails,
  inspectCache,
  inspectCase,
  type InspectEntry,
} from "./inspect/inspect.ts";
export { type IntegrityRecord, metadataSha256 } from "./format/integrity.ts";
export { crc32c } from "./codecs/crc32c.ts";
export { FetchError, type FetchStats } from "./store/http_store.ts";
export type { S3Options } from "./store/s3.ts";
export {
  cacheHandler,
  type CacheServer,
  serveCache,
  type ServeCacheOptions,
} from "./store/serve.ts";
