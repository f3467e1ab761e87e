/**
 * The Zarr v3 cache: layout, codecs, quantised storage, writing and reading cases.
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
} from "./reader.ts";
export { FetchError, type FetchStats } from "./_http_store.ts";
export type { S3Options } from "./_s3.ts";
export { cacheHandler, type CacheServer, serveCache, type ServeCacheOptions } from "./serve.ts";
